"""Runs one Anthropic Python SDK case against the gateway and prints one JSON object.

Usage: python python_sdk.py CASE. The gateway comes from ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY,
the model from GATEWAY_MODEL. The script asserts nothing: tests/e2e/tests/clients.rs does, on this
output and on what the fake Bedrock recorded. Retries are off so errors surface at once.
"""

import json
import os
import sys

import anthropic

MODEL = os.environ.get("GATEWAY_MODEL", "claude-sonnet-4-5-20250929")
BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command and return its output.",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


def client(**overrides):
    return anthropic.Anthropic(max_retries=0, timeout=60.0, **overrides)


def user(text):
    return {"role": "user", "content": text}


def case_create():
    message = client().messages.create(
        model=MODEL, max_tokens=64, messages=[user("Say hello [[fake:text]]")]
    )
    return message.model_dump(mode="json")


def case_stream():
    with client().messages.stream(
        model=MODEL, max_tokens=64, messages=[user("Stream a greeting [[fake:text]]")]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    return {"events": events, "final": final.model_dump(mode="json")}


def case_tools():
    c = client()
    first_user = user("Run the greeting [[fake:bash]]")
    first = c.messages.create(
        model=MODEL, max_tokens=256, tools=[BASH_TOOL], messages=[first_user]
    )
    tool_use = next(block for block in first.content if block.type == "tool_use")
    second = c.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[BASH_TOOL],
        messages=[
            first_user,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": "hello-from-tool",
                    }
                ],
            },
        ],
    )
    return {"first": first.model_dump(mode="json"), "second": second.model_dump(mode="json")}


def case_thinking():
    c = client()
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first_user = user("Think about it [[fake:thinking]]")
    first = c.messages.create(
        model=MODEL, max_tokens=2048, thinking=thinking, messages=[first_user]
    )
    # The assistant turn goes back exactly as received: the signature must reach Bedrock intact.
    second = c.messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking=thinking,
        messages=[
            first_user,
            {"role": "assistant", "content": first.content},
            user("And now the short version."),
        ],
    )
    return {"first": first.model_dump(mode="json"), "second": second.model_dump(mode="json")}


def case_beta():
    message = client().beta.messages.create(
        model=MODEL,
        max_tokens=64,
        betas=["interleaved-thinking-2025-05-14"],
        messages=[user("Say hello through the beta surface [[fake:text]]")],
    )
    return message.model_dump(mode="json")


def case_count_tokens():
    counted = client().messages.count_tokens(
        model=MODEL, messages=[user("Count the tokens of this sentence, please.")]
    )
    return counted.model_dump(mode="json")


def case_models():
    page = client().models.list()
    return {"ids": [model.id for model in page.data]}


def error_report(error):
    return {
        "error_class": type(error).__name__,
        "status": error.status_code,
        "body": error.body,
        "request_id": error.request_id,
    }


def case_bad_key():
    try:
        client(api_key="sk-gw-not-a-real-key").messages.create(
            model=MODEL, max_tokens=16, messages=[user("hello")]
        )
    except anthropic.APIStatusError as error:
        return error_report(error)
    return {"error_class": None}


def case_throttle():
    try:
        client().messages.create(
            model=MODEL, max_tokens=16, messages=[user("Please throttle [[fake:throttle]]")]
        )
    except anthropic.APIStatusError as error:
        return error_report(error)
    return {"error_class": None}


def case_rate_limited():
    """Sends requests until the gateway answers 429; reports how many got through first."""
    c = client()
    succeeded = 0
    for _ in range(10):
        try:
            c.messages.create(
                model=MODEL, max_tokens=16, messages=[user("Count me [[fake:text]]")]
            )
            succeeded += 1
        except anthropic.RateLimitError as error:
            report = error_report(error)
            report["succeeded_before"] = succeeded
            report["requests_limit"] = error.response.headers.get(
                "anthropic-ratelimit-requests-limit"
            )
            return report
    return {"error_class": None, "succeeded_before": succeeded}


PTC_TOOLS = [
    {"type": "code_execution_20250825", "name": "code_execution"},
    {
        "name": "get_weather",
        "description": "The current weather of a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "allowed_callers": ["code_execution_20250825"],
    },
]


def case_ptc():
    """Programmatic Tool Calling on the beta surface: answers each tool call the code makes
    (a tool_use with a `caller`) until the turn ends."""
    c = client()
    messages = [user("What is the weather in Paris? Use code.")]
    rounds = []
    containers = []
    final = None
    for _ in range(6):
        extra = {"container": containers[-1]} if containers else {}
        message = c.beta.messages.create(
            model=MODEL,
            max_tokens=1024,
            betas=["advanced-tool-use-2025-11-20"],
            tools=PTC_TOOLS,
            messages=messages,
            **extra,
        )
        rounds.append(
            {
                "stop_reason": message.stop_reason,
                "blocks": [block.type for block in message.content],
                "callers": [
                    block.caller.model_dump(mode="json")
                    for block in message.content
                    if block.type == "tool_use" and getattr(block, "caller", None)
                ],
            }
        )
        containers.append(message.container.id if message.container else None)
        if message.stop_reason == "end_turn":
            final = message
            break
        calls = [
            block
            for block in message.content
            if block.type == "tool_use" and getattr(block, "caller", None)
        ]
        if not calls:
            break
        messages.append({"role": "assistant", "content": message.content})
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": f"sunny-22C-in-{call.input.get('city', '?')}",
                    }
                    for call in calls
                ],
            }
        )
    text = stdout = None
    if final is not None:
        text = "".join(b.text for b in final.content if b.type == "text")
        stdout = next(
            (
                b.model_dump(mode="json")["content"].get("stdout")
                for b in final.content
                if b.type == "code_execution_tool_result"
            ),
            None,
        )
    return {
        "rounds": rounds,
        "containers": containers,
        "final_text": text,
        "stdout": stdout,
    }


CASES = {
    name[len("case_"):]: function
    for name, function in globals().items()
    if name.startswith("case_")
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: python_sdk.py {{{'|'.join(CASES)}}}")
    print(json.dumps(CASES[sys.argv[1]]()))
