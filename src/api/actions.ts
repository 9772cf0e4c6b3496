import { z } from 'zod';

/** A Postfix access(5) action: one line, starting with an upper-case action word. */
export const actionSchema = z
  .string()
  .max(512)
  .regex(/^[A-Z][A-Z0-9_]*(?: [^\r\n]*)?$/, 'a Postfix action such as DUNNO, OK, "REJECT text" or "DEFER_IF_PERMIT text" (one line)');
