import { z } from 'zod';

/**
 * Kubernetes' object-name grammar, as its IsDNS1123Subdomain checks names of Secrets and custom
 * resources: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit,
 * at most 253 characters. A reference to an object by name is held to it, so a name no object
 * can have is refused at admission instead of read as "not found" at every reconcile.
 */
export const OBJECT_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const OBJECT_NAME = new RegExp(OBJECT_NAME_PATTERN);
const MESSAGE = 'is not a Kubernetes object name: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit';

/**
 * A name of an object in the same namespace. The grammar goes to the CRD as a CEL rule (one clear
 * message) rather than an OpenAPI pattern, whose message would only repeat the expression.
 */
export function objectNameSchema(description: string) {
  return z
    .string()
    .min(1)
    .max(253)
    .refine((name) => OBJECT_NAME.test(name), MESSAGE)
    .meta({ 'x-kubernetes-validations': [{ rule: `self.matches('${OBJECT_NAME_PATTERN.replaceAll('\\', '\\\\')}')`, message: MESSAGE }] })
    .describe(description);
}
