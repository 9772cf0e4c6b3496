// Postfix 3.7 → the mailwarden image → manifests (see suite.ts).
import { postfixSuite } from './suite.ts';

postfixSuite('manifests');
