import { CompiledList } from './compiled-list.ts';
import type { InvalidEntry } from './entry.ts';
import { LIST_NAMES, type ListName, type MailboxRecord } from './lists.ts';
import type { DecisionOptions } from './options.ts';

/** A mailbox ready for decisions: each set list compiled, unset lists `null`. */
export interface CompiledMailbox {
  readonly address: string;
  readonly allowedSenders: CompiledList | null;
  readonly rejectedSenders: CompiledList | null;
  readonly allowedRecipients: CompiledList | null;
  readonly rejectedRecipients: CompiledList | null;
  /** Invalid entries found in any list (default semantics), for the metric and the log. */
  readonly invalid: readonly { readonly list: ListName; readonly entry: InvalidEntry }[];
}

export function compileMailbox(record: MailboxRecord, options: DecisionOptions): CompiledMailbox {
  const invalid: { list: ListName; entry: InvalidEntry }[] = [];
  const compiled: Record<ListName, CompiledList | null> = {
    allowedSenders: null,
    rejectedSenders: null,
    allowedRecipients: null,
    rejectedRecipients: null,
  };
  for (const name of LIST_NAMES) {
    const values = record.lists[name];
    if (values === null || values.length === 0) continue;
    const list = new CompiledList(values, options.validateEntries);
    for (const entry of list.invalid) invalid.push({ list: name, entry });
    compiled[name] = list;
  }
  return { address: record.address, ...compiled, invalid };
}
