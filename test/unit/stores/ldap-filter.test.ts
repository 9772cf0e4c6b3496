import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FilterParser } from 'ldapts';
import { escapeDnValue, iredmailUserDn } from '../../helpers/ldap-dn.ts';
import { escapeFilterValue, lookupFilter, userFilterProblem } from '../../../src/stores/ldap-filter.ts';

describe('escapeFilterValue (RFC 4515)', () => {
  const cases: [string, string, string][] = [
    ['plain address', 'bob@example.com', 'bob@example.com'],
    ['asterisk', 'a*b@example.com', 'a\\2ab@example.com'],
    ['parentheses', 'a(b)@example.com', 'a\\28b\\29@example.com'],
    ['backslash', 'a\\b@example.com', 'a\\5cb@example.com'],
    ['NUL', 'a\u0000b', 'a\\00b'],
    ['filter injection', 'x)(mail=*', 'x\\29\\28mail=\\2a'],
    ['quotes and percent are not special', `o'neil"%_@example.com`, `o'neil"%_@example.com`],
    ['non-ASCII stays UTF-8', 'jösé@exämple.com', 'jösé@exämple.com'],
    ['astral characters stay whole', 'a😀@example.com', 'a😀@example.com'],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => assert.equal(escapeFilterValue(input), expected));
  }

  test('an escaped value parses back to itself as one equality assertion', () => {
    for (const value of ['x)(mail=*', 'a\\b*c(d)e\u0000f', 'jösé@exämple.com', '*']) {
      const parsed = FilterParser.parseString(`(mail=${escapeFilterValue(value)})`) as unknown as { value: string; attribute: string };
      assert.equal(parsed.constructor.name, 'EqualityFilter');
      assert.equal(parsed.attribute, 'mail');
      assert.equal(parsed.value, value);
    }
  });
});

describe('lookupFilter', () => {
  const attrs = ['mail', 'shadowAddress'];

  test('one search for every key in every address attribute, ANDed with the user filter', () => {
    assert.equal(
      lookupFilter(['a@x.test', 'b@x.test'], attrs, '(objectClass=mailUser)'),
      '(&(|(mail=a@x.test)(shadowAddress=a@x.test)(mail=b@x.test)(shadowAddress=b@x.test))(objectClass=mailUser))',
    );
  });

  test('a single term needs no OR', () => {
    assert.equal(lookupFilter(['a@x.test'], ['mail'], '(objectClass=mailUser)'), '(&(mail=a@x.test)(objectClass=mailUser))');
  });

  test('a user filter without outer parentheses gets them', () => {
    assert.equal(lookupFilter(['a@x.test'], ['mail'], 'objectClass=mailUser'), '(&(mail=a@x.test)(objectClass=mailUser))');
  });

  test('a hostile key stays inside its assertion', () => {
    const filter = lookupFilter(['*)(objectClass=*'], attrs, '(objectClass=mailUser)');
    const parsed = FilterParser.parseString(filter) as unknown as { filters: { filters?: unknown[] }[] };
    assert.equal(parsed.constructor.name, 'AndFilter');
    assert.equal(parsed.filters.length, 2);
    assert.equal(parsed.filters[0]?.filters?.length, 2);
  });

  test('no keys is a programming error', () => {
    assert.throws(() => lookupFilter([], attrs, '(objectClass=mailUser)'), RangeError);
  });
});

describe('escapeDnValue (RFC 4514)', () => {
  const cases: [string, string, string][] = [
    ['plain', 'bob@example.com', 'bob@example.com'],
    ['specials', 'a,b+c;d<e>f"g\\h=i', 'a\\,b\\+c\\;d\\<e\\>f\\"g\\\\h\\=i'],
    ['leading hash', '#bob', '\\#bob'],
    ['leading and trailing space', ' bob ', '\\ bob\\ '],
    ['NUL', 'a\u0000b', 'a\\00b'],
    ['non-ASCII kept', 'jösé', 'jösé'],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => assert.equal(escapeDnValue(input), expected));
  }

  test("iRedMail's user DN", () => {
    assert.equal(
      iredmailUserDn('bob@example.com', 'o=domains,dc=example,dc=com'),
      'mail=bob@example.com,ou=Users,domainName=example.com,o=domains,dc=example,dc=com',
    );
    assert.equal(
      iredmailUserDn('a,b@example.com', 'o=domains,dc=example,dc=com'),
      'mail=a\\,b@example.com,ou=Users,domainName=example.com,o=domains,dc=example,dc=com',
    );
  });
});

describe('userFilterProblem', () => {
  const parse = (text: string) => FilterParser.parseString(text);
  test('accepts the default and compound filters', () => {
    assert.equal(userFilterProblem('(objectClass=mailUser)', parse), undefined);
    assert.equal(userFilterProblem('(&(objectClass=mailUser)(accountStatus=active))', parse), undefined);
    assert.equal(userFilterProblem('objectClass=mailUser', parse), undefined);
  });
  test('refuses unbalanced or unparsable filters', () => {
    assert.match(userFilterProblem('(objectClass=mailUser', parse) ?? '', /never closed/);
    assert.match(userFilterProblem('(objectClass=mailUser))', parse) ?? '', /no matching/);
    assert.notEqual(userFilterProblem('(&(objectClass=mailUser)(x))', parse), undefined);
  });
});
