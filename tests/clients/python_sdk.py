"""Runs one Anthropic Python SDK case against the gateway and prints one JSON object.

Usage: python python_sdk.py CASE. The gateway comes from ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY,
the model from GATEWAY_MODEL. The script asserts nothing: tests/e2e/tests/it/clients.rs does, on this
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


def case_create_or_error():
    """`create` with the configured key; an API error (a revoked key) is reported, not raised."""
    try:
        return case_create()
    except anthropic.APIStatusError as error:
        return error_report(error)


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


RAW_EVENTS = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
}


def ptc_answer(call):
    """The client side of get_weather: a plain string, an error for Rome, a list of text blocks
    for Lima (the code must receive them joined with a newline)."""
    city = call.input.get("city", "?")
    result = {"type": "tool_result", "tool_use_id": call.id}
    if city == "Rome":
        result.update(content="Rome-offline", is_error=True)
    elif city == "Lima":
        result["content"] = [
            {"type": "text", "text": "rain"},
            {"type": "text", "text": "in-Lima"},
        ]
    else:
        result["content"] = f"sunny-in-{city}"
    return result


def ptc_send(c, stream, messages, container):
    """One PTC round through the beta client: (message, request id, observed raw events)."""
    params = dict(
        model=MODEL,
        max_tokens=1024,
        betas=["advanced-tool-use-2025-11-20"],
        tools=PTC_TOOLS,
        messages=messages,
    )
    if container:
        params["container"] = container
    if not stream:
        message = c.beta.messages.create(**params)
        return message, message._request_id, None
    events = []
    with c.beta.messages.stream(**params) as s:
        for event in s:
            if event.type not in RAW_EVENTS:
                continue
            seen = {"type": event.type}
            if event.type == "content_block_start":
                block = event.content_block.model_dump(mode="json")
                seen["block"] = block["type"]
                seen["input"] = block.get("input")
                seen["caller"] = block.get("caller")
            elif event.type == "content_block_delta":
                seen["delta"] = event.delta.type
            elif event.type == "message_start":
                seen["usage"] = event.message.usage.model_dump(mode="json")
                container_start = getattr(event.message, "container", None)
                seen["container"] = container_start.id if container_start else None
            elif event.type == "message_delta":
                seen["stop_reason"] = event.delta.stop_reason
                seen["usage"] = event.usage.model_dump(mode="json")
                container_end = getattr(event.delta, "container", None)
                seen["container"] = container_end.id if container_end else None
            events.append(seen)
        message = s.get_final_message()
        request_id = s.request_id
    return message, request_id, events


def ptc_round_report(message, request_id, events):
    blocks = [block.model_dump(mode="json") for block in message.content]
    return {
        "request_id": request_id,
        "stop_reason": message.stop_reason,
        "types": [block["type"] for block in blocks],
        "blocks": blocks,
        "usage": message.usage.model_dump(mode="json"),
        "container": message.container.id if message.container else None,
        "events": events,
    }


def ptc_task(c, stream, messages, container, max_rounds=8):
    """Answers every sandbox tool call (results in reverse call order) until the model's turn
    ends; returns the round reports, the final message and the container id."""
    rounds = []
    for _ in range(max_rounds):
        message, request_id, events = ptc_send(c, stream, messages, container)
        rounds.append(ptc_round_report(message, request_id, events))
        if message.container:
            container = message.container.id
        messages.append({"role": "assistant", "content": message.content})
        calls = [
            block
            for block in message.content
            if block.type == "tool_use" and getattr(block, "caller", None)
        ]
        if message.stop_reason != "tool_use" or not calls:
            return rounds, container
        messages.append(
            {"role": "user", "content": [ptc_answer(call) for call in reversed(calls)]}
        )
    return rounds, container


def ptc_flow(stream):
    """Task 1: the code calls one tool, then three at once (one fails, one answers with a list),
    then raises. Task 2 names the container again: the file survives, the variables do not."""
    c = client()
    messages = [user("Check the weather in four cities with code.")]
    first, container = ptc_task(c, stream, messages, None)
    messages.append(user("Again: what did the first run leave in the workspace?"))
    second, container_after = ptc_task(c, stream, messages, container)
    return {"first": first, "second": second, "containers": [container, container_after]}


def case_ptc_flow():
    return ptc_flow(stream=False)


def case_ptc_flow_stream():
    return ptc_flow(stream=True)


def ptc_rounds(stream):
    """One five-round conversation: pause, three minimal pauses, final."""
    c = client()
    rounds, container = ptc_task(c, stream, [user("Five rounds of weather, please.")], None)
    return {"rounds": rounds, "container": container}


def case_ptc_rounds():
    return ptc_rounds(stream=False)


def case_ptc_rounds_stream():
    return ptc_rounds(stream=True)


def ptc_error(call):
    try:
        call()
    except anthropic.APIStatusError as error:
        return error_report(error)
    return {"error_class": None}


def case_ptc_expiry():
    """A paused execution outlives the session's idle time: the continuation is refused (404),
    streaming or not; a new task naming the dead container gets a fresh one."""
    import time
    from datetime import datetime

    c = client()
    messages = [user("Weather in Paris with code, but answer slowly.")]
    message, _, _ = ptc_send(c, False, messages, None)
    paused = ptc_round_report(message, None, None)
    container = message.container.id
    expires_at = message.container.expires_at
    if isinstance(expires_at, str):
        expires_at = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    time.sleep(max(0.0, expires_at.timestamp() - time.time()) + 1.5)
    calls = [b for b in message.content if b.type == "tool_use" and getattr(b, "caller", None)]
    messages.append({"role": "assistant", "content": message.content})
    messages.append({"role": "user", "content": [ptc_answer(call) for call in calls]})
    expired = ptc_error(lambda: ptc_send(c, False, messages, container))
    expired_stream = ptc_error(lambda: ptc_send(c, True, messages, container))
    fresh, fresh_container = ptc_task(
        c, False, [user("A new task, reusing the old container id.")], container
    )
    return {
        "paused": paused,
        "container": container,
        "expired": expired,
        "expired_stream": expired_stream,
        "fresh": fresh,
        "fresh_container": fresh_container,
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
