// migrate-to-amavisd against a real PostgreSQL 15; cases in migrate-to-amavisd-suite.ts.
import { migrateToAmavisdSuite } from './migrate-to-amavisd-suite.ts';

migrateToAmavisdSuite('postgres');
