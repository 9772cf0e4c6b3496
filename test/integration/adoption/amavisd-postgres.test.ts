import { amavisdAdoptionSuite } from './amavisd-suite.ts';

amavisdAdoptionSuite('postgres');
