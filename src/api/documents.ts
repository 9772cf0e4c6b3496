import { parseAllDocuments } from 'yaml';
import { formatIssues } from './issues.ts';
import { mailboxName } from './restriction-owner.ts';
import {
  displayName,
  MAIL_USER_RESTRICTION_KIND,
  mailUserRestrictionSchema,
  type MailUserRestriction,
} from './mail-user-restriction.ts';

/** A MailUserRestriction read from a file, with where it came from. */
export interface SourcedRestriction {
  readonly document: MailUserRestriction;
  /** `file` or `file#N` for the N-th document (1-based) of a multi-document file. */
  readonly source: string;
}

/** One problem with one document, already phrased for a person: `file#2 (ns/name): spec.x: why`. */
export interface DocumentProblem {
  readonly source: string;
  readonly message: string;
}

export interface ParsedFile {
  readonly restrictions: SourcedRestriction[];
  readonly problems: DocumentProblem[];
  /** Documents of other kinds (MailBackend, kustomizations …), which this reader passes over. */
  readonly skipped: number;
}

/**
 * Parses a YAML file of one or more documents. MailUserRestriction documents are validated
 * with the shared schema; documents of other kinds are passed over, since example folders mix
 * kinds. YAML syntax errors are problems of the file.
 */
export function parseRestrictionFile(file: string, text: string): ParsedFile {
  const restrictions: SourcedRestriction[] = [];
  const problems: DocumentProblem[] = [];
  let skipped = 0;
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const many = Array.isArray(docs) && docs.length > 1;
  if (!Array.isArray(docs)) {
    // An empty stream parses to a lone EmptyStream object.
    return { restrictions, problems, skipped };
  }
  docs.forEach((doc, index) => {
    const source = many ? `${file}#${index + 1}` : file;
    if (doc.errors.length > 0) {
      problems.push({ source, message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` });
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push({ source, message: 'is not a Kubernetes-style object (apiVersion, kind, metadata, spec)' });
      return;
    }
    const object = value as { kind?: unknown; apiVersion?: unknown };
    if (object.kind !== MAIL_USER_RESTRICTION_KIND) {
      skipped++;
      return;
    }
    const result = mailUserRestrictionSchema.safeParse(value);
    if (!result.success) {
      const name = displayName(value as never);
      for (const line of formatIssues(result.error)) {
        problems.push({ source, message: `${MAIL_USER_RESTRICTION_KIND} ${name}: ${line}` });
      }
      return;
    }
    restrictions.push({ document: result.data, source });
  });
  return { restrictions, problems, skipped };
}

/** Two restrictions for one mailbox (in any case, its domain in Unicode or xn-- form) are an error naming both sources. */
export function findDuplicateMailboxes(restrictions: readonly SourcedRestriction[]): DocumentProblem[] {
  const seen = new Map<string, SourcedRestriction>();
  const problems: DocumentProblem[] = [];
  for (const r of restrictions) {
    const mailbox = mailboxName(r.document.spec.mailbox);
    const first = seen.get(mailbox);
    if (first) {
      problems.push({
        source: r.source,
        message: `mailbox ${mailbox} is restricted twice: by ${displayName(first.document)} in ${first.source} and by ${displayName(r.document)} in ${r.source}`,
      });
    } else {
      seen.set(mailbox, r);
    }
  }
  return problems;
}
