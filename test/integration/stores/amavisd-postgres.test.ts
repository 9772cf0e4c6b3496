// The amavisd store against a real PostgreSQL 15; cases in amavisd-suite.ts.
import { amavisdStoreSuite } from './amavisd-suite.ts';

amavisdStoreSuite('postgres');
