/** The `repodata` command: its options, and the record cache kept with the Actions cache. */
import { channelRepository, channelUrl, checkSubdir, KNOWN_SUBDIRS, type Channel } from '../conda/channel.js';
import type { Store } from '../oci/storage.js';
import { UsageError } from '../usage.js';
import { defineCommand } from '../core/command.js';
import {
  concurrencyOption,
  GITHUB_TOKEN_OPTION,
  LABEL_OPTION,
  NAMING_OPTION,
  REGISTRY_OPTIONS,
  RESULT_OPTIONS,
} from '../core/common-options.js';
import { flag, list, text, type OptionsOf } from '../core/options.js';
import { restoreRepodataCache, saveRepodataCache } from '../github/cache.js';
import { repodata } from './repodata.js';

const REPODATA_OPTIONS = {
  channel: text('channel', {
    help: 'The (production) channel to index.',
    placeholder: '<channel>',
    example: 'oci://ghcr.io/conda-forge/conda-forge',
    required: true,
  }),
  subdirs: list('subdirs', {
    aliases: ['subdir'],
    help: 'The subdirs to index; one job per subdir in a matrix is the intended use.',
    placeholder: '<subdir>',
    example: 'linux-64',
    commas: true,
    item: checkSubdir,
    defaultText: 'every subdir of the channel, plus noarch',
  }),
  patchInstructions: text('patch-instructions', {
    help:
      "conda-forge's repodata patch instructions: a JSON file (one instructions object, or one per " +
      'subdir keyed by subdir) or a directory of <subdir>/patch_instructions.json.',
    placeholder: '<file|dir>',
  }),
  cacheDir: text('cache-dir', {
    help: 'Where the record cache lives between runs, so that a run reads only new artifacts.',
    placeholder: '<dir>',
    defaultText: 'with cache: $RUNNER_TEMP/conda-oci-repodata-cache',
  }),
  cache: flag('cache', {
    help: 'Keep the record cache between runs with the Actions cache (keyed by channel and subdirs); a cache failure is a warning.',
    only: 'action',
  }),
  verify: flag('verify', { help: 'Re-resolve every cached tag and read again what changed.' }),
  newSubdir: flag('new-subdir', {
    help: 'Publish repodata for a subdir conda does not know and the channel does not hold yet (otherwise refused as a likely typo).',
  }),
  ...LABEL_OPTION,
  ...NAMING_OPTION,
  ...concurrencyOption('Registry requests', 16),
  ...REGISTRY_OPTIONS,
  ...GITHUB_TOKEN_OPTION,
  ...RESULT_OPTIONS,
};

export type RepodataCommandOptions = OptionsOf<typeof REPODATA_OPTIONS>;

export const repodataCommand = defineCommand({
  name: 'repodata',
  summary: 'regenerate repodata.json, current_repodata.json, run_exports.json and channeldata.json',
  description:
    'Lists every package repository and tag of each subdir, builds repodata from index.json and info ' +
    'layers (never from package bytes), and pushes the documents with JSON, zstd and gzip layers. ' +
    'Incremental with a record cache; deterministic bytes; an unchanged document is not pushed again.',
  examples: [
    'conda-oci repodata --channel oci://ghcr.io/conda-forge/conda-forge --subdir linux-64 --cache-dir .cache',
  ],
  options: REPODATA_OPTIONS,
  run: async (options, context) => {
    const cacheDir =
      options.cacheDir ??
      (options.cache ? `${context.sources.env.RUNNER_TEMP ?? '/tmp'}/conda-oci-repodata-cache` : undefined);
    for (const subdir of options.subdirs ?? []) checkSubdir(subdir);
    const { channel, store } = context.open(options.channel);
    if (!options.newSubdir) await refuseUnknownSubdirs(options.subdirs ?? [], channel, store);
    const key = { channel: `${options.channel} ${options.label ?? ''}`, subdirs: options.subdirs };
    const actionsCache = options.cache && cacheDir ? context.cache : undefined;
    const log = {
      info: (m: string) => context.reporter.info(m),
      warning: (m: string) => context.reporter.warn(m),
    };
    if (actionsCache) await restoreRepodataCache(cacheDir!, key, actionsCache, log, context.sources.env);
    try {
      return await repodata(
        {
          channel,
          ...(options.subdirs?.length ? { subdirs: options.subdirs } : {}),
          ...(options.patchInstructions ? { patchInstructions: options.patchInstructions } : {}),
          ...(cacheDir ? { cacheDir } : {}),
          verify: options.verify,
          concurrency: options.concurrency,
          naming: options.naming,
        },
        { store, reporter: context.reporter, now: context.now },
      );
    } finally {
      // what was read is worth keeping even when the run failed later
      if (actionsCache) await saveRepodataCache(cacheDir!, key, actionsCache, log, context.sources.env);
    }
  },
});

/** A subdir nobody knows and the channel does not hold is a typo until a flag says otherwise. */
async function refuseUnknownSubdirs(subdirs: string[], channel: Channel, store: Store): Promise<void> {
  for (const subdir of subdirs) {
    if (KNOWN_SUBDIRS.has(subdir)) continue;
    const held = store.listRepositories(channelRepository(channel, subdir))[Symbol.asyncIterator]();
    const first = await held.next();
    await held.return?.();
    if (first.done)
      throw new UsageError(
        `subdir ${subdir} is not one conda knows, and ${channelUrl(channel)} holds nothing in it: a typo? (the new-subdir option creates it)`,
      );
  }
}
