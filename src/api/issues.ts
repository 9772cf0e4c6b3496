import type { z } from 'zod';

/** Problems with a value as one line each: `spec.allowedSenders[2]: "x" is not an entry …`. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path
      .map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
      .join('');
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}
