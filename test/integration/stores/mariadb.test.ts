// The SQL store against a real MariaDB 10.11 (test/harness/containers.ts); cases in sql-suite.ts.
import { sqlStoreSuite } from './sql-suite.ts';

sqlStoreSuite('mariadb');
