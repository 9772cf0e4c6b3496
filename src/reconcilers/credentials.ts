import type { MailBackend } from '../api/mail-backend.ts';
import type { SecretLister } from './types.ts';

/** Why a backend's password or CA cannot be had, phrased for its status. */
export class CredentialsError extends Error {
  /** For the MailBackend's Ready reason: the Secret or key is missing, or its value is unusable. */
  readonly reason: 'SecretNotFound' | 'SecretInvalid';
  constructor(message: string, reason: CredentialsError['reason'] = 'SecretNotFound') {
    super(message);
    this.name = 'CredentialsError';
    this.reason = reason;
  }
}

/** What a backend's Secrets hold for its store: the password and the CA certificates. */
export interface BackendSecrets {
  readonly password: string | undefined;
  readonly ca: string | undefined;
}

/** Both of a backend's Secrets, read from the informer cache; throws a CredentialsError. */
export function backendSecretsOf(backend: MailBackend, secrets: SecretLister): BackendSecrets {
  return { password: passwordOf(backend, secrets), ca: caOf(backend, secrets) };
}

/** The password a backend's credentialsSecretRef names (undefined when it names none). */
export function passwordOf(backend: MailBackend, secrets: SecretLister): string | undefined {
  const ref = backend.spec.credentialsSecretRef;
  return ref === undefined ? undefined : secretValue(backend, ref.name, ref.key ?? 'password', secrets);
}

/** The PEM CA certificates a backend's caSecretRef names (undefined when it names none). */
export function caOf(backend: MailBackend, secrets: SecretLister): string | undefined {
  const ref = backend.spec.caSecretRef;
  if (ref === undefined) return undefined;
  const key = ref.key ?? 'ca.crt';
  const pem = secretValue(backend, ref.name, key, secrets);
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CredentialsError(`Secret ${backend.metadata.namespace ?? ''}/${ref.name} key "${key}" holds no PEM certificate`, 'SecretInvalid');
  }
  return pem;
}

function secretValue(backend: MailBackend, name: string, key: string, secrets: SecretLister): string {
  const namespace = backend.metadata.namespace ?? '';
  if (secrets.readable?.(name) === false) {
    throw new CredentialsError(`Secret ${namespace}/${name} is not one the operator may read: the cluster admin lists those in the chart value rbac.backendSecretNames`);
  }
  const secret = secrets.get(namespace, name);
  if (secret === undefined) throw new CredentialsError(`Secret ${namespace}/${name} not found`);
  const encoded = secret.data?.[key];
  const plain = secret.stringData?.[key];
  if (encoded === undefined && plain === undefined) throw new CredentialsError(`Secret ${namespace}/${name} has no key "${key}"`);
  return plain ?? Buffer.from(encoded!, 'base64').toString('utf8');
}
