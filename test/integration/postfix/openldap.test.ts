// Postfix 3.7 → the mailwarden image → openldap (see suite.ts).
import { postfixSuite } from './suite.ts';

postfixSuite('openldap');
