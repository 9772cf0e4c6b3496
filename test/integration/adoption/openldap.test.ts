import { adoptionSuite } from './suite.ts';

adoptionSuite('openldap');
