"""Second-client check of the fake Bedrock: boto3 must accept every operation's output.

Usage: python boto3_check.py http://127.0.0.1:PORT
Starts nothing itself; exits non-zero on any mismatch. Standard library + boto3 only.
"""

import base64
import json
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
)

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def user(text):
    return [{"role": "user", "content": [{"text": text}]}]


def invoke_body(text):
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        }
    )


def control(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def check_converse(client):
    out = client.converse(modelId=CLAUDE, messages=user("[[fake:thinking]]"))
    content = out["output"]["message"]["content"]
    reasoning = content[0]["reasoningContent"]["reasoningText"]
    check(reasoning["text"].startswith("The user wants"), "converse reasoning text")
    check(bool(reasoning.get("signature")), "converse reasoning signature")
    check(content[1]["text"] == "After thinking: the answer is 42.", "converse text")
    check(out["stopReason"] == "end_turn", "converse stopReason")
    check(out["usage"]["inputTokens"] >= 1 and out["usage"]["outputTokens"] >= 1, "converse usage")
    check("latencyMs" in out["metrics"], "converse metrics")

    out = client.converse(modelId=CLAUDE, messages=user("[[fake:redacted_thinking]]"))
    redacted = out["output"]["message"]["content"][0]["reasoningContent"]["redactedContent"]
    check(redacted == b"\x00\x01redacted-bytes-from-the-fake\xff", "converse redacted bytes")

    out = client.converse(
        modelId=CLAUDE_ARN,
        messages=user("[[fake:cache]]"),
        serviceTier={"type": "priority"},
    )
    check(out["usage"]["cacheReadInputTokens"] == 1800, "converse cache read")
    check(out["usage"]["cacheWriteInputTokens"] == 600, "converse cache write")
    check(out.get("serviceTier", {}).get("type") == "priority", "converse service tier echo")


def check_converse_stream(client):
    out = client.converse_stream(modelId=CLAUDE, messages=user("[[fake:bash]]"))
    names, text, tool_input, tool_fragments, start = [], "", "", 0, None
    stop, metadata = None, None
    for event in out["stream"]:
        name = next(iter(event))
        names.append(name)
        body = event[name]
        if name == "contentBlockStart":
            start = body["start"]["toolUse"]
        elif name == "contentBlockDelta":
            delta = body["delta"]
            text += delta.get("text", "")
            if "toolUse" in delta:
                tool_input += delta["toolUse"]["input"]
                tool_fragments += 1
        elif name == "messageStop":
            stop = body
        elif name == "metadata":
            metadata = body
    check(names[0] == "messageStart", "stream starts with messageStart")
    check(names[-2:] == ["messageStop", "metadata"], f"stream ends with messageStop, metadata: {names[-2:]}")
    check(text == "I'll run that command.", f"stream text {text!r}")
    check(start is not None and start["name"] == "Bash", "stream toolUse start")
    check(tool_fragments >= 2, "tool input arrives in fragments")
    check(json.loads(tool_input or "null") == {"command": "echo hello-from-tool", "description": "Print a greeting"}, "tool input JSON")
    check(stop is not None and stop["stopReason"] == "tool_use", "stream stopReason")
    check(metadata is not None and metadata["usage"]["outputTokens"] >= 1, "stream metadata usage")

    out = client.converse_stream(modelId=CLAUDE, messages=user("[[fake:thinking]]"))
    reasoning, signature = "", ""
    for event in out["stream"]:
        delta = event.get("contentBlockDelta", {}).get("delta", {}).get("reasoningContent", {})
        reasoning += delta.get("text", "")
        signature += delta.get("signature", "")
    check(reasoning.startswith("The user wants"), "stream reasoning text")
    check(signature.startswith("EqQB"), "stream reasoning signature")

    out = client.converse_stream(modelId=CLAUDE, messages=user("[[fake:stream_error]]"))
    try:
        for _ in out["stream"]:
            pass
        check(False, "mid-stream exception raised")
    except EventStreamError as error:
        check(error.response["Error"]["Code"] == "throttlingException", f"mid-stream code {error.response['Error']}")


def check_invoke(client):
    out = client.invoke_model(modelId=CLAUDE, body=invoke_body("hello"), serviceTier="priority")
    message = json.loads(out["body"].read())
    check(message["id"].startswith("msg_bdrk_"), "invoke message id")
    check(message["content"] == [{"type": "text", "text": f"Hello from fake Bedrock ({CLAUDE})"}], "invoke content")
    check(message["stop_reason"] == "end_turn", "invoke stop_reason")
    headers = out["ResponseMetadata"]["HTTPHeaders"]
    check(headers.get("x-amzn-bedrock-input-token-count") == "1", "invoke input token header")
    check("x-amzn-bedrock-output-token-count" in headers, "invoke output token header")
    check(out.get("serviceTier") == "priority", "invoke service tier header")

    try:
        client.invoke_model(modelId=CLAUDE, body=invoke_body("[[fake:throttle]]"))
        check(False, "throttle raises")
    except client.exceptions.ThrottlingException as error:
        check(error.response["ResponseMetadata"]["HTTPStatusCode"] == 429, "throttle status")

    try:
        client.invoke_model(modelId=CLAUDE, body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": user("x"), "model": "m"}))
        check(False, "extra key raises")
    except client.exceptions.ValidationException as error:
        check("Extra inputs are not permitted" in error.response["Error"]["Message"], "extra key message")


def check_invoke_stream(client):
    out = client.invoke_model_with_response_stream(modelId=CLAUDE_ARN, body=invoke_body("[[fake:thinking_tool]]"))
    events = [json.loads(event["chunk"]["bytes"]) for event in out["body"]]
    types = [event["type"] for event in events]
    check(types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"], f"invoke stream order {types}")
    check(any(e.get("delta", {}).get("type") == "signature_delta" for e in events), "invoke stream signature")
    partial = "".join(e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("type") == "input_json_delta")
    check(json.loads(partial or "null") == {"command": "echo hello-from-tool", "description": "Print a greeting"}, "invoke stream tool input")
    check(events[-2]["delta"]["stop_reason"] == "tool_use", "invoke stream stop_reason")
    check("amazon-bedrock-invocationMetrics" in events[-1], "invoke stream metrics")

    out = client.invoke_model_with_response_stream(modelId=CLAUDE, body=invoke_body("[[fake:stream_overloaded]]"))
    try:
        for _ in out["body"]:
            pass
        check(False, "invoke mid-stream exception raised")
    except EventStreamError as error:
        check(error.response["Error"]["Code"] == "modelStreamErrorException", f"invoke mid-stream code {error.response['Error']}")


def check_count_tokens(client):
    out = client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": user("z" * 40)}})
    check(out["inputTokens"] == 10, f"count tokens converse {out['inputTokens']}")
    body = invoke_body("z" * 80).encode()
    out = client.count_tokens(modelId=CLAUDE, input={"invokeModel": {"body": body}})
    check(out["inputTokens"] == 20, f"count tokens invoke {out['inputTokens']}")


def check_recording(url):
    requests = control(url, "GET", "/_fake/requests")
    arn_calls = [r for r in requests if r["model_id"] == CLAUDE_ARN]
    check(len(arn_calls) == 2, "ARN model ids recorded decoded")
    check(all("%2F" in r["path"] and "%3A" in r["path"] for r in arn_calls), "ARN paths percent-encoded")
    operations = {r["operation"] for r in requests}
    expected = {"converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens"}
    check(operations == expected, f"operations recorded {operations}")
    check(all(r["headers"].get("authorization", "").startswith("AWS4-HMAC-SHA256") for r in requests), "SigV4 recorded")
    invoke_count = [r for r in requests if r["operation"] == "count-tokens" and "invokeModel" in r["body"]["input"]]
    decoded = json.loads(base64.b64decode(invoke_count[0]["body"]["input"]["invokeModel"]["body"]))
    check(decoded["anthropic_version"] == "bedrock-2023-05-31", "count tokens invoke body is base64 JSON")


def main():
    if len(sys.argv) != 2:
        print("usage: boto3_check.py http://127.0.0.1:PORT", file=sys.stderr)
        return 2
    url = sys.argv[1].rstrip("/")
    control(url, "POST", "/_fake/reset")
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDFAKE",
        aws_secret_access_key="fake-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    for step in (check_converse, check_converse_stream, check_invoke, check_invoke_stream, check_count_tokens):
        try:
            step(client)
        except (ClientError, EventStreamError, KeyError, ValueError, TypeError) as error:
            check(False, f"{step.__name__} raised {error!r}")
    check_recording(url)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("boto3 checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
