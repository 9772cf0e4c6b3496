import type { MailBackend } from '../api/mail-backend.ts';
import type { SecretLister } from './types.ts';

/** Why a backend's password cannot be had, phrased for its status. */
export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/** The password a backend's credentialsSecretRef names (undefined when it names none). */
export function passwordOf(backend: MailBackend, secrets: SecretLister): string | undefined {
  const ref = backend.spec.credentialsSecretRef;
  if (ref === undefined) return undefined;
  const namespace = backend.metadata.namespace ?? '';
  const secret = secrets.get(namespace, ref.name);
  if (secret === undefined) throw new CredentialsError(`Secret ${namespace}/${ref.name} not found`);
  const key = ref.key ?? 'password';
  const encoded = secret.data?.[key];
  const plain = secret.stringData?.[key];
  if (encoded === undefined && plain === undefined) throw new CredentialsError(`Secret ${namespace}/${ref.name} has no key "${key}"`);
  return plain ?? Buffer.from(encoded!, 'base64').toString('utf8');
}
