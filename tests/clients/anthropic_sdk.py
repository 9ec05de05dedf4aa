"""The Anthropic Python SDK against tollgate's /v1/messages: create, stream, tool use (whole and
streamed), count_tokens and the SDK's exception types for refusals.

Usage: anthropic_sdk.py BASE_URL API_KEY [MODEL]
Prints one JSON object with what each step saw; exits non-zero when a step fails.
"""

import json
import sys

import anthropic

TOOLS = [
    {
        "name": "lookup_fact",
        "description": "Look up a fact about a topic.",
        "input_schema": {
            "type": "object",
            "properties": {"topic": {"type": "string"}},
            "required": ["topic"],
        },
    }
]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


def create(client, model):
    message = client.messages.create(
        model=model,
        max_tokens=200,
        system="You are terse.",
        messages=[{"role": "user", "content": "Tell me about deployment slots."}],
        stop_sequences=["\n\nHuman:"],
        # This SDK version no longer takes `temperature` as an argument; the API still does.
        extra_body={"temperature": 0.2},
        metadata={"user_id": "sdk-test"},
    )
    check(message.type == "message" and message.role == "assistant", "not a message")
    check(message.stop_reason == "end_turn", f"stop_reason {message.stop_reason}")
    check(text_of(message), "empty answer")
    check(message.usage.input_tokens > 0 and message.usage.output_tokens > 0, "no usage")
    return {"text": text_of(message), "usage": message.usage.model_dump()}


def stream(client, model):
    with client.messages.stream(
        model=model,
        max_tokens=200,
        messages=[{"role": "user", "content": "How do health probes work?"}],
    ) as events:
        text = "".join(events.text_stream)
        final = events.get_final_message()
    check(text and text == text_of(final), "streamed text differs from the final message")
    check(final.stop_reason == "end_turn", f"stop_reason {final.stop_reason}")
    check(final.usage.output_tokens > 0, "no output usage in message_delta")
    return {"text": text, "output_tokens": final.usage.output_tokens}


def tool_use(client, model):
    question = {"role": "user", "content": "What do you know about the semantic cache?"}
    first = client.messages.create(model=model, max_tokens=300, tools=TOOLS, messages=[question])
    check(first.stop_reason == "tool_use", f"stop_reason {first.stop_reason}")
    calls = [block for block in first.content if block.type == "tool_use"]
    check(calls and calls[0].name == "lookup_fact", f"tool calls {calls}")
    check(isinstance(calls[0].input, dict) and calls[0].input.get("topic"), "no tool input")
    results = [
        {"type": "tool_result", "tool_use_id": call.id, "content": "Semantic caching reuses answers to similar prompts."}
        for call in calls
    ]
    second = client.messages.create(
        model=model,
        max_tokens=300,
        tools=TOOLS,
        messages=[question, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}],
    )
    check(second.stop_reason == "end_turn" and text_of(second), "no final answer after the tool result")
    with client.messages.stream(model=model, max_tokens=300, tools=TOOLS, messages=[question]) as events:
        streamed = events.get_final_message()
    streamed_calls = [block for block in streamed.content if block.type == "tool_use"]
    check(streamed.stop_reason == "tool_use", f"streamed stop_reason {streamed.stop_reason}")
    check(streamed_calls and streamed_calls[0].input == calls[0].input, "streamed tool input differs")
    return {"tool": calls[0].name, "input": calls[0].input, "final": text_of(second)}


def count_tokens(client, model):
    counted = client.messages.count_tokens(
        model=model,
        system="You are terse.",
        messages=[{"role": "user", "content": "Count me, please."}],
    )
    check(counted.input_tokens > 0, "no tokens counted")
    return {"input_tokens": counted.input_tokens}


def refusals(base_url, client, model):
    seen = {}
    try:
        anthropic.Anthropic(base_url=base_url, api_key="not-a-key", max_retries=0).messages.create(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        raise AssertionError("a wrong key was accepted")
    except anthropic.AuthenticationError as error:
        check(error.body["error"]["type"] == "authentication_error", f"body {error.body}")
        seen["wrong_key"] = error.status_code
    try:
        client.messages.create(model=model, max_tokens=0, messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("max_tokens 0 was accepted")
    except anthropic.BadRequestError as error:
        check(error.body["error"]["type"] == "invalid_request_error", f"body {error.body}")
        seen["bad_request"] = error.status_code
    return seen


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else "claude-tollgate-test"
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
    results = {
        "create": create(client, model),
        "stream": stream(client, model),
        "tool_use": tool_use(client, model),
        "count_tokens": count_tokens(client, model),
        "refusals": refusals(base_url, client, model),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
