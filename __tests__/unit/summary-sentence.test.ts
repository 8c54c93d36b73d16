import { describe, expect, test } from 'vitest';
import { finish, summarySentence } from '../../src/commands/report.js';

describe('the result in one sentence', () => {
  test('counters in prose: bytes in human units, statuses by name', () => {
    const result = finish(
      'upload',
      {},
      [
        { subdir: 'linux-64', file: 'a-1-0.conda', status: 'uploaded' },
        { subdir: 'linux-64', file: 'b-1-0.conda', status: 'skipped' },
      ],
      { bytesSent: 46_797 },
    );
    expect(summarySentence(result)).toBe('upload: 2 artifact(s): 1 uploaded, 1 skipped, 45.7 KiB sent');
  });

  test('repodata counts packages; its artifacts are the documents it wrote', () => {
    const result = finish(
      'repodata',
      {},
      [
        { subdir: 'noarch', file: 'repodata.json', status: 'exists' },
        { subdir: 'noarch', file: 'current_repodata.json', status: 'uploaded' },
      ],
      { records: 9, fetched: 2, cached: 7, skipped: 1 },
    );
    expect(summarySentence(result)).toBe(
      'repodata: 9 package(s) indexed (2 read, 7 from the cache, 1 left out); 2 document(s): 1 exists, 1 uploaded',
    );
  });

  test('nothing to do says so', () => {
    expect(summarySentence(finish('clean', {}, []))).toBe('clean: 0 artifact(s): nothing to do');
  });
});
