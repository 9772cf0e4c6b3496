import { explain } from '../restrictions/decide.ts';
import { explainWblist } from '../restrictions/amavisd-wblist.ts';
import { silentLogger } from '../observability/logger.ts';
import { PolicyDecoder } from '../policy/codec.ts';
import { ConfigError } from '../api/config-error.ts';
import { decisionOptionsOf, loadPolicydConfig, resolverOptionsOf, wblistSettingsOf } from '../policy/config.ts';
import { DecisionService, type Decider } from '../policy/decision-handler.ts';
import { DEFAULT_POLICY_SERVER_LIMITS } from '../policy/limits.ts';
import { mailboxSourceFor } from '../policy/mailbox-source.ts';
import { emptyPolicyRequest, type PolicyRequest } from '../policy/request.ts';
import { openStore } from '../stores/open.ts';
import { isWblistReader } from '../stores/store.ts';
import { WblistDecider } from '../policy/wblist-decisions.ts';
import { readPassword } from './secrets.ts';
import { DECISION_FLAGS, DECISION_FLAGS_HELP, decisionOverrides, EXIT_OK, parseCommandLine, UsageError, type Io } from './usage.ts';

export const DECIDE_HELP = `Usage: mailwarden decide --store STORE --sender S --recipient R [--sasl-username U] [--explain]
       mailwarden decide --store STORE --request - [--explain]

Prints the policy action Postfix would get for one RCPT request, e.g. "REJECT Not authorized".
With --explain, a second line says which mailbox, list and entry decided (amavisd schema: which
account, party and W/B pair). With --request -, a raw
policy request (name=value lines, as Postfix sends them) is read from standard input.

      --sender ADDR            envelope sender ("" for the null sender <>)
      --recipient ADDR         envelope recipient
      --sasl-username USER     the SMTP AUTH login, if any
      --client-address IP      the connecting client's address (amavisd schema: IP and network entries)
      --request -              read the request from standard input instead
      --explain                say why

${DECISION_FLAGS_HELP}`;

export async function decideCommand(args: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(args, {
    ...DECISION_FLAGS,
    sender: { type: 'string' },
    recipient: { type: 'string' },
    'sasl-username': { type: 'string' },
    'client-address': { type: 'string' },
    request: { type: 'string' },
    explain: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(DECIDE_HELP + '\n');
    return EXIT_OK;
  }
  let request: PolicyRequest;
  if (values.request !== undefined) {
    if (values.request !== '-') throw new UsageError('--request takes "-" (standard input)');
    if (values.sender !== undefined || values.recipient !== undefined) throw new UsageError('--request - cannot be combined with --sender/--recipient');
    request = await readRequest(io.stdin);
  } else {
    if (values.sender === undefined || values.recipient === undefined) {
      throw new UsageError('decide needs --sender and --recipient, or --request - (see mailwarden decide --help)');
    }
    request = {
      ...emptyPolicyRequest(),
      request: 'smtpd_access_policy',
      protocolState: 'RCPT',
      sender: values.sender,
      recipient: values.recipient,
      saslUsername: values['sasl-username'] ?? '',
      ...(values['client-address'] === undefined ? {} : { clientAddress: values['client-address'] }),
    };
  }
  const config = await loadPolicydConfig(values.config, decisionOverrides(values));
  if (config.store === undefined) throw new UsageError('decide needs --store PATH|URL (or "store:" in the config file)');
  const options = decisionOptionsOf(config);
  const store = await openStore({
    store: config.store,
    settings: config.storeSettings,
    semantics: options.semantics,
    password: readPassword(config, io.env),
    watch: false,
  });
  try {
    let service: Decider;
    if (isWblistReader(store)) {
      service = new WblistDecider({ store, options, wblist: wblistSettingsOf(config), resolver: resolverOptionsOf(config) });
    } else {
      // kubernetes:// fills in the background: one decision waits for the list.
      await store.whenLoaded?.();
      const source = mailboxSourceFor({ store, decision: options, options: resolverOptionsOf(config), logger: silentLogger });
      service = new DecisionService({ source, options });
    }
    const decision = await service.decide(request);
    io.stdout.write(decision.action + '\n');
    if (values.explain) io.stdout.write((decision.wblist === undefined ? explain(decision) : explainWblist(decision.wblist)) + '\n');
    return EXIT_OK;
  } finally {
    await store.close();
  }
}

/** One policy request from a stream, ended by an empty line or the end of input. */
async function readRequest(input: AsyncIterable<Buffer | string>): Promise<PolicyRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  let text = Buffer.concat(chunks);
  // A request typed or piped without its closing empty line is still one request.
  if (!text.toString('latin1').endsWith('\n\n')) text = Buffer.concat([text, Buffer.from(text.at(-1) === 0x0a ? '\n' : '\n\n')]);
  const decoder = new PolicyDecoder(DEFAULT_POLICY_SERVER_LIMITS);
  let found: PolicyRequest | undefined;
  decoder.decode(text, 0, (request) => {
    found = request;
    return false;
  });
  if (decoder.error) throw new ConfigError(`the request on standard input is not a policy request: ${decoder.error.message}`);
  if (found === undefined) throw new UsageError('standard input held no policy request');
  return found;
}
