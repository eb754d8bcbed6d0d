"""Structured output, conversations, tools executed in Python."""
from typing import List, Optional

import pydantic
import pytest

import llmgate

PERSON = {"type": "object", "required": ["name"],
          "additionalProperties": False,
          "properties": {"name": {"type": "string"}}}


class Person(pydantic.BaseModel):
    name: str
    age: Optional[int] = None


def test_schema_dict_with_repair(client):
    r = client.call('{"name": "Ada"}', models=["mock/json-fix:1"],
                    schema=PERSON)
    assert r.parsed == {"name": "Ada"}
    assert [a.cls for a in r.attempts] == ["schema", "ok"]
    assert "bad" in r.attempts[0].message


def test_schema_pydantic_model_with_repair(client):
    r = client.call('{"name": "Ada", "age": 36}', models=["mock/json-fix:1"],
                    schema=Person)
    assert isinstance(r.parsed, Person)
    assert (r.parsed.name, r.parsed.age) == ("Ada", 36)
    assert r.attempts[0].cls == "schema"


def test_schema_out_of_repairs(client):
    with pytest.raises(llmgate.SchemaError) as ei:
        client.call('{"name": "Ada"}', models=["mock/json-fix:9"],
                    schema=PERSON)
    assert len(ei.value.attempts) == 3


def test_resume_continues_the_conversation(client, fakeprov, uniq):
    model = uniq()
    r = client.call("first", models=["oa/" + model], system="sys")
    r2 = r.resume("second")
    assert r2.text == "echo: second"
    body = fakeprov.last(model)["body"]
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("system", "sys"), ("user", "first"),
        ("assistant", "echo: first"), ("user", "second")]
    r3 = client.resume(r2, "third", max_tokens=5)
    assert r3.text == "echo: third"
    assert len(fakeprov.last(model)["body"]["messages"]) == 6


def test_tool_schema_from_type_hints():
    @llmgate.tool
    def search(query: str, limit: int = 5, tags: Optional[List[str]] = None,
               exact: bool = False) -> str:
        """Search the docs.

        More words."""
        return query

    assert search.name == "search"
    assert search.description == "Search the docs."
    p = search.parameters
    assert p["required"] == ["query"]
    assert p["properties"]["query"] == {"type": "string"}
    assert p["properties"]["limit"]["type"] == "integer"
    assert p["properties"]["tags"]["items"] == {"type": "string"}
    assert p["properties"]["exact"]["type"] == "boolean"
    assert search("x") == "x"

    @llmgate.tool(name="add_person")
    def add(p: Person) -> str:
        return p.name

    assert add.parameters["required"] == ["name"]
    assert add.invoke({"name": "Bo"}) == "Bo"


def test_execute_tools_turns_errors_into_outputs(client, uniq):
    @llmgate.tool
    def get_weather(city: str) -> dict:
        """Current weather."""
        raise RuntimeError("station down")

    m = "oa/" + uniq("+tool=get_weather+args=%7B%22city%22%3A%22Oslo%22%7D")
    r = client.call("weather?", models=[m], tools=[get_weather])
    assert r.finish_reason == "tool_calls"
    outs = r.execute_tools()
    assert len(outs) == 1 and isinstance(outs[0].error, RuntimeError)
    assert outs[0].output == "error: RuntimeError: station down"
    # The error goes back to the model on resume.
    r2 = r.resume()
    assert r2.text == "echo: error: RuntimeError: station down"


def test_tool_loop_recovers_from_a_tool_error(client, fakeprov, uniq):
    calls = []

    @llmgate.tool
    def get_weather(city: str) -> dict:
        """Current weather."""
        calls.append(city)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return {"temp_c": 4}

    model = uniq("+tool=get_weather+tool_again"
                 "+args=%7B%22city%22%3A%22Oslo%22%7D")
    r = client.run_tools("weather in Oslo?", models=["oa/" + model],
                         tools=[get_weather])
    assert calls == ["Oslo", "Oslo"]
    assert r.text == 'echo: {"temp_c": 4}'
    msgs = fakeprov.last(model)["body"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool",
                                         "assistant", "tool"]
    assert msgs[2]["content"].startswith("error: ConnectionError")


def test_tool_loop_gives_up_after_max_tool_errors(client, uniq):
    n = []

    @llmgate.tool
    def get_weather(city: str) -> dict:
        """Current weather."""
        n.append(1)
        raise ValueError("broken for good")

    model = uniq("+tool=get_weather+tool_again"
                 "+args=%7B%22city%22%3A%22Oslo%22%7D")
    with pytest.raises(ValueError, match="broken for good"):
        client.run_tools("weather?", models=["oa/" + model],
                         tools=[get_weather], max_tool_errors=2)
    assert len(n) == 2


def test_tool_arguments_repaired_by_the_daemon(client):
    @llmgate.tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny in " + city

    r = client.call('{"city": "Paris"}', models=["mock/tool-fix:1"],
                    tools=[get_weather])
    assert r.tool_calls[0].args == {"city": "Paris"}
    assert r.attempts[0].cls == "schema"
    assert r.execute_tools()[0].output == "sunny in Paris"


def test_tool_choice_reaches_the_provider(client, fakeprov, uniq):
    @llmgate.tool
    def get_weather(city: str) -> dict:
        """Current weather."""
        return {"temp_c": 4}

    model = uniq("tc")
    client.call("weather?", models=["an/" + model], tools=[get_weather],
                tool_choice=get_weather)
    assert fakeprov.last(model)["body"]["tool_choice"] == {
        "type": "tool", "name": "get_weather"}
    model = uniq("tc")
    client.call("weather?", models=["oa/" + model], tools=[get_weather],
                tool_choice="required")
    assert fakeprov.last(model)["body"]["tool_choice"] == "required"
    with pytest.raises(llmgate.InvalidRequest):
        client.call("weather?", models=["oa/" + uniq("tc")],
                    tools=[get_weather], tool_choice={"name": "nope"})
    with pytest.raises(ValueError):
        client.call("weather?", models=["oa/" + uniq("tc")],
                    tools=[get_weather], tool_choice="always")
