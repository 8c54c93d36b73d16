/** The job summary: one table per run, every artifact, and every failed check. */
import * as core from '@actions/core';
import { summarySentence, type CommandResult } from '../commands/report.js';
import { formatBytes } from '../util/format-bytes.js';
import { redact } from '../redact.js';

const STATUS_ICON: Record<string, string> = {
  failed: '❌',
  skipped: '⏭️',
  exists: '✅',
  'already-published': '✅',
  'would-delete': '🗑️',
  deleted: '🗑️',
};

export async function writeSummary(result: CommandResult): Promise<void> {
  const header = [
    { data: 'artifact', header: true },
    { data: 'subdir', header: true },
    { data: 'size', header: true },
    { data: 'sha256', header: true },
    { data: 'status', header: true },
    { data: 'reference', header: true },
  ];
  // validate: who asked, as proven (attestation or feedstock token), beside each artifact.
  const proven = result.artifacts.some((a) => a.requester);
  if (proven) header.push({ data: 'requester (proven)', header: true });
  const rows = result.artifacts.map((a) => [
    `<code>${escapeHtml(a.file)}</code>`,
    escapeHtml(a.subdir),
    a.size === undefined ? '' : formatBytes(a.size),
    a.sha256 ? `<code>${a.sha256.slice(0, 12)}…</code>` : '',
    `${STATUS_ICON[a.status] ?? '✅'} ${a.status}`,
    a.reference ? `<code>${escapeHtml(a.reference)}</code>` : '',
    ...(proven ? [a.requester ? escapeHtml(a.requester) : 'none'] : []),
  ]);
  const summary = core.summary
    .addHeading(`conda-oci ${result.command}`, 3)
    .addRaw(
      `${Object.entries(result.channels)
        .map(([role, url]) => `${role}: <code>${escapeHtml(url)}</code>`)
        .join(' · ')}<br>${escapeHtml(summarySentence(result))}`,
      true,
    )
    .addTable([header, ...rows]);
  for (const a of result.artifacts.filter((x) => x.checks?.length)) {
    const failed = a.checks!.filter((c) => !c.ok);
    summary.addDetails(
      `${failed.length ? '❌' : '✅'} checks of ${escapeHtml(`${a.subdir}/${a.file}`)}`,
      `<ul>${a.checks!.map((c) => `<li>${c.ok ? '✅' : '❌'} <b>${c.name}</b>: ${escapeHtml(c.detail)}</li>`).join('')}</ul>`,
    );
  }
  for (const a of result.artifacts.filter((x) => x.status === 'failed' && !x.checks?.length)) {
    summary.addRaw(
      `❌ <code>${escapeHtml(`${a.subdir}/${a.file}`)}</code>: ${escapeHtml(a.error ?? 'failed')}`,
      true,
    );
  }
  await summary.write();
}

/** Free text (errors, check details) for the summary: redacted, then escaped. */
function escapeHtml(text: string): string {
  return redact(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
