// Random amavisd worlds against the independent model on a real PostgreSQL 15; see amavisd-random-suite.ts.
import { amavisdRandomSuite } from './amavisd-random-suite.ts';

amavisdRandomSuite('postgres');
