// The official OpenAI and Anthropic SDKs against llmgated's HTTP front,
// with the loopback fake provider upstream. Run by tests/node/run.sh.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.LLMGATE_HTTP;
const logPath = process.env.LLMGATED_LOG;
let failed = 0;

const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-not-used', maxRetries: 2 });
const anthropic = new Anthropic({ baseURL: base, apiKey: 'sk-not-used', maxRetries: 2 });
const hello = [{ role: 'user', content: 'hello there' }];

function log() {
  return readFileSync(logPath, 'utf8');
}
// The front's requests so far, with the SDK's retry count of each.
function requests() {
  return [...log().matchAll(/HTTP POST \/v1\/\S+ from connection \S+?(, SDK retry count (\d+))?$/gm)]
    .map((m) => m[2]);
}
async function waitFor(what, fn, ms = 5000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (fn()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
// Exactly one request reached the front for fn, the SDK's first.
async function oneRequest(fn) {
  const before = requests().length;
  const r = await fn();
  const after = requests();
  assert.equal(after.length - before, 1, 'the SDK made more than one request');
  assert.equal(after[after.length - 1], '0');
  return r;
}
async function test(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

await test('openai plain', async () => {
  const { data, response } = await openai.chat.completions
    .create({ model: 'oa/n1', messages: hello }).withResponse();
  assert.equal(data.choices[0].message.content, 'echo: hello there');
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.equal(data.usage.total_tokens, 5);
  assert.equal(response.headers.get('x-llmgate-target'), 'oa/n1');
  assert.match(response.headers.get('x-llmgate-attempts'), /"class":"ok"/);
});

await test('openai streamed', async () => {
  const stream = await openai.chat.completions.create({
    model: 'an/n2', messages: hello, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'echo: hello there');
  assert.equal(usage.completion_tokens, 3);
});

await test('openai tools', async () => {
  const r = await openai.chat.completions.create({
    model: 'ge/n3+tool=get_weather+args=%7B%22city%22%3A%22Oslo%22%7D',
    messages: [{ role: 'user', content: 'weather?' }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
  });
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Oslo' });
  const r2 = await openai.chat.completions.create({
    model: 'oa/n3b',
    messages: [{ role: 'user', content: 'weather?' }, r.choices[0].message,
      { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 4}' }],
  });
  assert.equal(r2.choices[0].message.content, 'echo: {"temp_c": 4}');
});

// What the fake provider last received for a model.
async function fakeLast(model) {
  const r = await fetch(`${process.env.FAKEPROV}/_last?model=${encodeURIComponent(model)}`);
  return (await r.json()).body;
}

await test('openai tool_choice, forced', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];
  await openai.chat.completions.create({
    model: 'an/n3c', messages: [{ role: 'user', content: 'weather?' }], tools,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  assert.deepEqual((await fakeLast('n3c')).tool_choice, { type: 'tool', name: 'get_weather' });
  await openai.chat.completions.create({
    model: 'ge/n3d', messages: [{ role: 'user', content: 'weather?' }], tools, tool_choice: 'required',
  });
  assert.deepEqual((await fakeLast('n3d')).toolConfig, { functionCallingConfig: { mode: 'ANY' } });
});

await test('openai json schema with a repair', async () => {
  const r = await openai.chat.completions.create({
    model: 'mock/json-fix', messages: [{ role: 'user', content: '{"n": 3}' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } } },
  });
  assert.deepEqual(JSON.parse(r.choices[0].message.content), { n: 3 });
  assert.equal(r.llmgate.attempts.length, 2);
});

await test('openai fallback', async () => {
  const { data, response } = await openai.chat.completions
    .create({ model: 'oa/n5+status=500', models: ['oa/n5+status=500', 'an/n5b'], messages: hello })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'echo: hello there');
  assert.equal(response.headers.get('x-llmgate-target'), 'an/n5b');
});

await test('openai upstream 429 handled inside the daemon', async () => {
  const r = await oneRequest(() => openai.chat.completions.create({
    model: 'oa/n6+status=429+fail=1', messages: hello,
  }));
  assert.equal(r.choices[0].message.content, 'echo: hello there');
  assert.equal(r.llmgate.attempts[0].class, 'rate_limited');
});

await test('openai final errors are the SDK\'s own classes, not retried', async () => {
  await oneRequest(() => assert.rejects(
    openai.chat.completions.create({ model: 'oa/n7+status=400', messages: hello }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400));
  await oneRequest(() => assert.rejects(
    openai.chat.completions.create({ model: 'oa/n7b+status=400+code=context_length_exceeded', messages: hello }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded'));
  await oneRequest(() => assert.rejects(
    openai.chat.completions.create({ model: 'oa/n7c+status=429', messages: hello }),
    (e) => e instanceof OpenAI.RateLimitError && e.headers.get('retry-after') !== null));
  await oneRequest(() => assert.rejects(
    openai.chat.completions.create({ model: 'oa/n7d+status=500', messages: hello }),
    (e) => e instanceof OpenAI.InternalServerError && e.status === 502));
  await assert.rejects(
    openai.chat.completions.create({ model: 'no-such-model', messages: hello }),
    (e) => e instanceof OpenAI.NotFoundError);
});

await test('openai stream failing after output ends with an error', async () => {
  const stream = await openai.chat.completions.create({
    model: 'oa/n8+stream_error', messages: [{ role: 'user', content: 'a b c d e' }], stream: true,
  }, { headers: { 'x-llmgate-on-cut': 'fail' } });
  await assert.rejects(async () => {
    for await (const chunk of stream) void chunk;
  }, (e) => e instanceof OpenAI.APIError);
});

await test('openai aborted stream cancels the upstream', async () => {
  const ac = new AbortController();
  const stream = await openai.chat.completions.create({
    model: 'oa/n9+word_delay=300', messages: [{ role: 'user', content: 'a b c d e f' }], stream: true,
  }, { signal: ac.signal });
  // The SDK ends the iteration (or throws APIUserAbortError) on abort.
  try {
    for await (const chunk of stream) {
      void chunk;
      ac.abort();
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError, `${e}`);
  }
  const ms = await waitFor('the call to be cancelled',
    () => log().includes('[oa/n9+word_delay=300=cancelled]'));
  assert.ok(ms < 1000, `cancelled after ${ms} ms`);
});

await test('anthropic plain', async () => {
  const { data, response } = await anthropic.messages.create({
    model: 'ge/n10', max_tokens: 64, system: 'be brief', messages: hello,
  }).withResponse();
  assert.equal(data.type, 'message');
  assert.equal(data.content[0].text, 'echo: hello there');
  assert.equal(data.stop_reason, 'end_turn');
  assert.equal(data.usage.output_tokens, 3);
  assert.equal(response.headers.get('x-llmgate-target'), 'ge/n10');
});

await test('anthropic streamed', async () => {
  const stream = anthropic.messages.stream({ model: 'oa/n11', max_tokens: 64, messages: hello });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const msg = await stream.finalMessage();
  assert.equal(text, 'echo: hello there');
  assert.equal(msg.content[0].text, 'echo: hello there');
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.usage.output_tokens, 3);
});

await test('anthropic tools', async () => {
  const r = await anthropic.messages.create({
    model: 'an/n12+tool=get_weather+args=%7B%22city%22%3A%22Oslo%22%7D', max_tokens: 64,
    tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    messages: [{ role: 'user', content: 'weather?' }],
  });
  const use = r.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(use.input, { city: 'Oslo' });
  const r2 = await anthropic.messages.create({
    model: 'oa/n12b', max_tokens: 64,
    messages: [{ role: 'user', content: 'weather?' }, { role: 'assistant', content: r.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp_c": 4}' }] }],
  });
  assert.equal(r2.content[0].text, 'echo: {"temp_c": 4}');
});

await test('anthropic tool_choice any', async () => {
  await anthropic.messages.create({
    model: 'oa/n12c', max_tokens: 64, tool_choice: { type: 'any' },
    tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
    messages: [{ role: 'user', content: 'weather?' }],
  });
  assert.equal((await fakeLast('n12c')).tool_choice, 'required');
});

await test('anthropic errors', async () => {
  await oneRequest(() => assert.rejects(
    anthropic.messages.create({ model: 'an/n13+status=529', max_tokens: 64, messages: hello }),
    (e) => e instanceof Anthropic.APIError && e.status === 529 && e.error.error.type === 'overloaded_error'));
  await oneRequest(() => assert.rejects(
    anthropic.messages.create({ model: 'an/n13b+status=400', max_tokens: 64, messages: hello }),
    (e) => e instanceof Anthropic.BadRequestError));
});

await test('anthropic aborted stream cancels the upstream', async () => {
  const stream = anthropic.messages.stream({
    model: 'an/n14+word_delay=300', max_tokens: 64, messages: [{ role: 'user', content: 'a b c d e f' }],
  });
  stream.on('text', () => stream.abort());
  await assert.rejects(stream.finalMessage());
  await waitFor('the call to be cancelled', () => log().includes('[an/n14+word_delay=300=cancelled]'));
});

// models.retrieve sends the id percent-encoded (/v1/models/oa%2Fgpt-x).
await test('openai models.retrieve', async () => {
  const m = await openai.models.retrieve('oa/gpt-x');
  assert.equal(m.id, 'oa/gpt-x');
  assert.equal(m.object, 'model');
  assert.equal(m.owned_by, 'oa');
  const listed = [];
  for await (const x of openai.models.list()) listed.push(x.id);
  assert.ok(listed.includes('oa/gpt-x') && listed.includes('default'));
  await assert.rejects(openai.models.retrieve('oa/no-such-model'),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
});

// The Anthropic SDK sends anthropic-version: Anthropic's model format.
await test('anthropic models.list and retrieve', async () => {
  const all = [];
  for await (const m of anthropic.models.list()) all.push(m);
  const m = all.find((x) => x.id === 'oa/gpt-x');
  assert.ok(m, JSON.stringify(all));
  assert.equal(m.type, 'model');
  assert.equal(m.display_name, 'oa/gpt-x');
  assert.equal(new Date(m.created_at).toISOString(), '1970-01-01T00:00:00.000Z');
  assert.ok(all.some((x) => x.id === 'default' && x.type === 'model'));
  const page = await anthropic.models.list();
  assert.equal(page.has_more, false);
  assert.equal(page.first_id, all[0].id);
  assert.equal(page.last_id, all[all.length - 1].id);
  const one = await anthropic.models.retrieve('oa/gpt-x');
  assert.equal(one.type, 'model');
  assert.equal(one.id, 'oa/gpt-x');
  await assert.rejects(anthropic.models.retrieve('an/no-such-model'),
    (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error');
});

if (failed !== 0) {
  console.log(`${failed} failed`);
  process.exit(1);
}
