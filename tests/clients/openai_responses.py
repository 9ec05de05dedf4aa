"""The OpenAI Python SDK against tollgate's Responses API.

Usage: openai_responses.py BASE_URL KEY
Runs responses.create, responses.stream, a function-tool round trip and an unsupported
parameter, then prints what it saw as one JSON object. Exits non-zero on any failure.
"""

import json
import sys

import openai
from openai import OpenAI

MODEL = "gpt-4o-mini"
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    seen = {}

    created = client.responses.create(model=MODEL, instructions="Be brief.", input="Say hello")
    seen["create"] = {
        "text": created.output_text,
        "status": created.status,
        "total_tokens": created.usage.total_tokens,
    }

    with client.responses.stream(model=MODEL, input="Stream something") as stream:
        kinds, deltas = [], []
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    seen["stream"] = {
        "first": kinds[0],
        "last": kinds[-1],
        "deltas": deltas,
        "text": final.output_text,
        "total_tokens": final.usage.total_tokens,
    }

    question = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.responses.create(model=MODEL, input=question, tools=TOOLS)
    call = next(item for item in first.output if item.type == "function_call")
    follow_up = question + [
        call,
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain, 8 C"},
    ]
    second = client.responses.create(model=MODEL, input=follow_up, tools=TOOLS)
    seen["tools"] = {
        "name": call.name,
        "arguments": json.loads(call.arguments),
        "answer": second.output_text,
    }

    try:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_123")
        seen["unsupported"] = {"exception": None}
    except openai.BadRequestError as error:
        seen["unsupported"] = {
            "exception": type(error).__name__,
            "status": error.status_code,
            "code": error.code,
            "param": error.param,
        }

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
