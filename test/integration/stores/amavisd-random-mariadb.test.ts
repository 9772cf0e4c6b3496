// Random amavisd worlds against the independent model on a real MariaDB 10.11; see amavisd-random-suite.ts.
import { amavisdRandomSuite } from './amavisd-random-suite.ts';

amavisdRandomSuite('mariadb');
