// Runs one Anthropic TypeScript SDK case against the gateway and prints one JSON object.
//
// Usage: node ts_sdk.mjs CASE. The gateway comes from ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY, the
// model from GATEWAY_MODEL. The script asserts nothing: tests/e2e/tests/it/clients.rs does, on this
// output and on what the fake Bedrock recorded. Retries are off so errors surface at once.

import Anthropic from '@anthropic-ai/sdk';

const MODEL = process.env.GATEWAY_MODEL ?? 'claude-sonnet-4-5-20250929';
const BASH_TOOL = {
  name: 'Bash',
  description: 'Run a shell command and return its output.',
  input_schema: {
    type: 'object',
    properties: { command: { type: 'string' } },
    required: ['command'],
  },
};

const client = () => new Anthropic({ maxRetries: 0, timeout: 60_000 });
const user = (text) => ({ role: 'user', content: text });

const cases = {
  async create() {
    return client().messages.create({
      model: MODEL,
      max_tokens: 64,
      messages: [user('Say hello [[fake:text]]')],
    });
  },

  async stream() {
    const stream = client().messages.stream({
      model: MODEL,
      max_tokens: 64,
      messages: [user('Stream a greeting [[fake:text]]')],
    });
    const events = [];
    for await (const event of stream) events.push(event.type);
    const final = await stream.finalMessage();
    return { events, final };
  },

  async tools() {
    const c = client();
    const firstUser = user('Run the greeting [[fake:bash]]');
    const first = await c.messages.create({
      model: MODEL,
      max_tokens: 256,
      tools: [BASH_TOOL],
      messages: [firstUser],
    });
    const toolUse = first.content.find((block) => block.type === 'tool_use');
    const second = await c.messages.create({
      model: MODEL,
      max_tokens: 256,
      tools: [BASH_TOOL],
      messages: [
        firstUser,
        { role: 'assistant', content: first.content },
        {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: 'hello-from-tool' }],
        },
      ],
    });
    return { first, second };
  },

  async thinking() {
    const c = client();
    const thinking = { type: 'enabled', budget_tokens: 1024 };
    const firstUser = user('Think about it [[fake:thinking]]');
    const first = await c.messages.create({
      model: MODEL,
      max_tokens: 2048,
      thinking,
      messages: [firstUser],
    });
    // The assistant turn goes back exactly as received: the signature must reach Bedrock intact.
    const second = await c.messages.create({
      model: MODEL,
      max_tokens: 2048,
      thinking,
      messages: [
        firstUser,
        { role: 'assistant', content: first.content },
        user('And now the short version.'),
      ],
    });
    return { first, second };
  },
};

const name = process.argv[2];
if (!(name in cases)) {
  console.error(`usage: node ts_sdk.mjs {${Object.keys(cases).join('|')}}`);
  process.exit(2);
}
console.log(JSON.stringify(await cases[name]()));
