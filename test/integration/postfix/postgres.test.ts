// Postfix 3.7 → the mailwarden image → postgres (see suite.ts).
import { postfixSuite } from './suite.ts';

postfixSuite('postgres');
