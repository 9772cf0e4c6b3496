import { adoptionSuite } from './suite.ts';

adoptionSuite('postgres');
