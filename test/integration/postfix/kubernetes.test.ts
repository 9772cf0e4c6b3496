// Postfix 3.7 → the mailwarden image as a sidecar of store Kubernetes → MailUserRestriction
// resources on a real API server; no SQL or LDAP server runs (see suite.ts and stores.ts).
import { postfixSuite } from './suite.ts';

postfixSuite('kubernetes');
