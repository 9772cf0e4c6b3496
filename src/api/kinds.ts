/** mailwarden's kinds as the API server serves them: one version, and the plural of each kind in URLs. */
export const API_VERSION_NAME = 'v1alpha1';

/** Plural resource names of mailwarden's kinds. */
export const PLURALS = {
  MailUserRestriction: 'mailuserrestrictions',
  MailBackend: 'mailbackends',
  PolicyDaemon: 'policydaemons',
} as const;
export type MailwardenKind = keyof typeof PLURALS;
