// The amavisd store against a real MariaDB 10.11; cases in amavisd-suite.ts.
import { amavisdStoreSuite } from './amavisd-suite.ts';

amavisdStoreSuite('mariadb');
