"""The OpenAI Agents SDK running an agent with a function tool through tollgate.

Usage: openai_agents_run.py BASE_URL KEY
The agent uses the SDK's default model API, the Responses API, with tollgate as its OpenAI
client; tracing export is off. Runs the agent once whole and once streamed, and prints the
final outputs and the tool's calls as one JSON object. Exits non-zero on any failure.
"""

import asyncio
import json
import sys

from agents import (
    Agent,
    Runner,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

CITIES: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CITIES.append(city)
    return f"rain, 8 C in {city}"


async def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    set_tracing_disabled(True)
    set_default_openai_client(
        AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30),
        use_for_tracing=False,
    )
    agent = Agent(
        name="weather",
        instructions="Answer questions about the weather with the get_weather tool.",
        tools=[get_weather],
        model="gpt-4o-mini",
    )
    whole = await Runner.run(agent, "What is the weather in Oslo?")
    streamed = Runner.run_streamed(agent, "What is the weather in Bergen?")
    deltas = 0
    async for event in streamed.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            deltas += 1
    print(
        json.dumps(
            {
                "whole": whole.final_output,
                "streamed": streamed.final_output,
                "streamed_text_deltas": deltas,
                "tool_calls": CITIES,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
