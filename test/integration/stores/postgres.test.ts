// The SQL store against a real PostgreSQL 15 (test/harness/containers.ts); cases in sql-suite.ts.
import { sqlStoreSuite } from './sql-suite.ts';

sqlStoreSuite('postgres');
