/**
 * What the policy benchmark feeds the daemon: a store of MailUserRestriction manifests and
 * realistic Postfix 3.7 RCPT requests whose senders and recipients are among those mailboxes
 * (and outside them), so decisions reach every kind of list.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Deterministic PRNG (mulberry32) so every run sends the same mix. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const mailbox = (i: number): string => `user${i}@example.com`;

/** The four lists for mailbox i: five recurring shapes, from "internal only" to "block a few senders". */
export function listsFor(i: number): Record<string, string[]> {
  switch (i % 5) {
    case 0:
      return { allowedRecipients: ['@example.com'], rejectedRecipients: ['@.'] };
    case 1:
      return { rejectedSenders: ['@spam.example', 'marketing@ads.example'] };
    case 2:
      return { allowedSenders: ['@example.com', 'partner@partner.example'], rejectedSenders: ['@.'] };
    case 3:
      return { rejectedRecipients: ['@competitor.example', `user${(i + 7) % 10_000}@example.com`] };
    default:
      return { allowedRecipients: ['@example.com', '@partner.example'], rejectedRecipients: ['@.'], rejectedSenders: ['@spam.example'] };
  }
}

/** Writes one manifest file per mailbox into `dir`. */
export async function writeManifests(dir: string, count: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const lists = Object.entries(listsFor(i))
      .map(([key, values]) => `  ${key}:\n${values.map((v) => `    - '${v}'`).join('\n')}`)
      .join('\n');
    const yaml = `apiVersion: mailwarden.io/v1alpha1
kind: MailUserRestriction
metadata:
  name: user${i}
  namespace: mail
spec:
  mailbox: ${mailbox(i)}
${lists}
`;
    files.push(writeFile(join(dir, `user${i}.yaml`), yaml));
    if (files.length >= 256) await Promise.all(files.splice(0));
  }
  await Promise.all(files);
}

const OUTSIDE = ['friend@gmail.example', 'news@spam.example', 'marketing@ads.example', 'partner@partner.example', 'sales@competitor.example', 'someone@elsewhere.example'];

/** `count` distinct RCPT requests, each the full attribute set Postfix 3.7 smtpd sends. */
export function rcptRequests(count: number, mailboxes: number, seed = 1): string[] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const internal = (): string => mailbox(Math.floor(random() * mailboxes));
  const requests: string[] = [];
  for (let n = 0; n < count; n++) {
    // Mostly outbound from an authenticated user, some inbound from outside, some local.
    const kind = random();
    const authenticated = kind < 0.5;
    const sender = kind < 0.7 ? internal() : kind < 0.95 ? pick(OUTSIDE) : '';
    const recipient = kind < 0.5 && random() < 0.5 ? pick(OUTSIDE) : internal();
    const queueId = Math.floor(random() * 0xfffffffff).toString(16).toUpperCase();
    const clientIp = `192.0.2.${1 + Math.floor(random() * 250)}`;
    const attributes: [string, string][] = [
      ['request', 'smtpd_access_policy'],
      ['protocol_state', 'RCPT'],
      ['protocol_name', authenticated ? 'ESMTPSA' : 'ESMTPS'],
      ['helo_name', authenticated ? 'laptop.example.net' : 'mx.sender.example'],
      ['queue_id', queueId],
      ['sender', sender],
      ['recipient', recipient],
      ['recipient_count', '0'],
      ['client_address', clientIp],
      ['client_port', String(1024 + Math.floor(random() * 60_000))],
      ['client_name', authenticated ? 'unknown' : 'mx.sender.example'],
      ['reverse_client_name', authenticated ? 'dsl-192-0-2.example.net' : 'mx.sender.example'],
      ['instance', `${(n * 7919).toString(16)}.6734f1a2.2bd31.0`],
      ['sasl_method', authenticated ? 'PLAIN' : ''],
      ['sasl_username', authenticated ? sender : ''],
      ['sasl_sender', ''],
      ['size', String(1000 + Math.floor(random() * 200_000))],
      ['ccert_subject', ''],
      ['ccert_issuer', ''],
      ['ccert_fingerprint', ''],
      ['ccert_pubkey_fingerprint', ''],
      ['encryption_protocol', 'TLSv1.3'],
      ['encryption_cipher', 'TLS_AES_256_GCM_SHA384'],
      ['encryption_keysize', '256'],
      ['etrn_domain', ''],
      ['stress', ''],
      ['compatibility_level', '3.6'],
      ['mail_version', '3.7.11'],
      ['server_address', '198.51.100.25'],
      ['server_port', authenticated ? '587' : '25'],
      ['policy_context', ''],
    ];
    requests.push(attributes.map(([k, v]) => `${k}=${v}\n`).join('') + '\n');
  }
  return requests;
}
