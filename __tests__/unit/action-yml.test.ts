/** action.yml declares exactly the inputs the command definitions read (README "Action inputs"). */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { inputsBlock, inputsYaml } from '../helpers/action-yml.js';

const path = join(import.meta.dirname, '..', '..', 'action.yml');

test("action.yml's inputs are the options of the action's commands, with their meaning and defaults", () => {
  const file = readFileSync(path, 'utf8');
  const block = inputsBlock(file);
  const expected = inputsYaml();
  if (process.env.UPDATE_ACTION_YML === '1' && block.text !== expected)
    writeFileSync(path, file.slice(0, block.start) + expected + file.slice(block.end));
  expect(block.text).toBe(expected);
});
