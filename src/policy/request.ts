/**
 * A parsed Postfix policy delegation request: only the attributes mailwarden reads, kept as
 * plain fields so the hot path does no map lookups. Names follow Postfix's attribute names.
 */
export interface PolicyRequest {
  /** `request=` (always `smtpd_access_policy` from smtpd). */
  request: string | undefined;
  protocolState: string | undefined;
  sender: string | undefined;
  recipient: string | undefined;
  saslUsername: string | undefined;
  /** Identifies one message across its requests; useful in logs. */
  instance: string | undefined;
  queueId: string | undefined;
  clientAddress: string | undefined;
  /** How many attribute lines the request had (all of them, used or not). */
  attributeCount: number;
}

/**
 * Decides one request. Returns the action text without `action=` (for example `DUNNO` or
 * `REJECT Not authorized`), synchronously when the answer is at hand (a cache hit), else as a
 * promise. It must never throw or reject: failures are answered with the failure action.
 */
export type PolicyHandler = (request: PolicyRequest) => string | Promise<string>;

export function emptyPolicyRequest(): PolicyRequest {
  return {
    request: undefined,
    protocolState: undefined,
    sender: undefined,
    recipient: undefined,
    saslUsername: undefined,
    instance: undefined,
    queueId: undefined,
    clientAddress: undefined,
    attributeCount: 0,
  };
}
