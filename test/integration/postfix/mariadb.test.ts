// Postfix 3.7 → the mailwarden image → mariadb (see suite.ts).
import { postfixSuite } from './suite.ts';

postfixSuite('mariadb');
