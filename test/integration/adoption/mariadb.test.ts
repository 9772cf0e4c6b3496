import { adoptionSuite } from './suite.ts';

adoptionSuite('mariadb');
