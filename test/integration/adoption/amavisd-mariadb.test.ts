import { amavisdAdoptionSuite } from './amavisd-suite.ts';

amavisdAdoptionSuite('mariadb');
