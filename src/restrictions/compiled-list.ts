import { parseEntry, type InvalidEntry } from './entry.ts';
import { trimAscii } from './sql-list.ts';

/**
 * A list compiled for matching: entries sorted into sets by kind, so matching an address costs
 * a few hash lookups whatever the list's length.
 *
 * Under the `iredapd` preset entries are not validated: every piece is filed by its first
 * characters exactly as iRedAPD compared them (`address == entry`, `'@'+domain == entry`,
 * `'@.'+domain == entry`, `'@.' == entry`), which reproduces its quirks — an empty piece
 * matches the null sender, a lone `@` matches an address with an empty domain, a bare domain
 * matches nothing.
 */
export class CompiledList {
  // Each kind's table exists only when the list has such entries: matching skips an absent
  // kind without touching its (cold) memory, which is most of the cost at 10,000 mailboxes.
  #addresses: Set<string> | null = null;
  /** Domain → the entry text a match reports (`@domain`, `@.domain`), built once, not per match. */
  #domains: Map<string, string> | null = null;
  #trees: Map<string, string> | null = null;
  #any = false;
  /** Entries in the order given (canonical text), for explanations and read-back. */
  readonly entries: readonly string[];
  /** Entries ignored as invalid (default semantics only). */
  readonly invalid: readonly InvalidEntry[];

  constructor(values: readonly string[], validate: boolean) {
    const kept: string[] = [];
    const invalid: InvalidEntry[] = [];
    for (const value of values) {
      if (validate) {
        const entry = parseEntry(value);
        switch (entry.kind) {
          case 'invalid':
            invalid.push(entry);
            continue;
          case 'any':
            this.#any = true;
            break;
          case 'domain':
            (this.#domains ??= new Map()).set(entry.domain, `@${entry.domain}`);
            break;
          case 'domainTree':
            (this.#trees ??= new Map()).set(entry.domain, `@.${entry.domain}`);
            break;
          case 'address':
            (this.#addresses ??= new Set()).add(entry.address);
            break;
        }
        kept.push(entry.text);
      } else {
        const piece = trimAscii(value).toLowerCase();
        this.#fileLiteral(piece);
        kept.push(piece);
      }
    }
    this.entries = kept;
    this.invalid = invalid;
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The entry that matches `address` (lower-cased), or undefined. `domain` is the text after
   * the address's last `@` (the whole address when it has none, as iRedAPD's split did).
   * With `subdomains`, `@.example.com` also matches `x.example.com`, `a.b.example.com`.
   */
  match(address: string, domain: string, subdomains: boolean): string | undefined {
    if (this.#addresses !== null && this.#addresses.has(address)) return address;
    if (this.#domains !== null) {
      const byDomain = this.#domains.get(domain);
      if (byDomain !== undefined) return byDomain;
    }
    const trees = this.#trees;
    if (trees !== null) {
      const tree = trees.get(domain);
      if (tree !== undefined) return tree;
      if (subdomains) {
        for (let dot = domain.indexOf('.'); dot >= 0; dot = domain.indexOf('.', dot + 1)) {
          const parentTree = trees.get(domain.slice(dot + 1));
          if (parentTree !== undefined) return parentTree;
        }
      }
    }
    if (this.#any) return '@.';
    return undefined;
  }

  #fileLiteral(piece: string): void {
    if (piece === '@.') this.#any = true;
    else if (piece.startsWith('@.')) (this.#trees ??= new Map()).set(piece.slice(2), piece);
    else if (piece.startsWith('@')) (this.#domains ??= new Map()).set(piece.slice(1), piece);
    else (this.#addresses ??= new Set()).add(piece);
  }
}

/** The domain part as the spec defines it: the text after the last `@`. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(at + 1);
}
