// migrate-to-amavisd against a real MariaDB 10.11; cases in migrate-to-amavisd-suite.ts.
import { migrateToAmavisdSuite } from './migrate-to-amavisd-suite.ts';

migrateToAmavisdSuite('mariadb');
