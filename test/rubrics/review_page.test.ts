// The review page in a real headless browser (Debian's chromium, driven by puppeteer-core) against
// the `rubrics review` CLI in a child process: a reviewer id asked once, a round loaded, criteria
// accepted, edited and rejected and candidates graded from the keyboard, each shown saved only
// once the server answered; a reload shows every decision; the server killed with SIGKILL
// mid-round and restarted still has them; text from the data is never run as HTML.
// PROMEDICAL_SCREENSHOTS=1 also writes docs/images/rubrics-review*.png.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, HTTPRequest, Page } from 'puppeteer-core';
import { foldJournal, readJournal } from '../../src/rubrics/journal.js';
import { journalFile } from '../../src/rubrics/review_work.js';
import { ROOT } from '../helpers/cli.js';
import { draftItem, exited, reviewCli, workFolder } from './review_helpers.js';

const CHROMIUM = process.env.PROMEDICAL_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.PROMEDICAL_SCREENSHOTS === '1' ? path.join(ROOT, 'docs/images') : null;
const XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';

const items = [
  draftItem(0),
  draftItem(1, {
    prompt: [
      { role: 'system', content: 'You are a careful pediatric assistant.' },
      { role: 'user', content: `${XSS} My daughter (2) swallowed a button battery an hour ago. She seems fine.` },
    ],
    candidates: [
      { id: 'c0', model: 'model-a', text: `Go to the emergency department now. <b onmouseover="window.__xss=3">bold?</b>` },
      { id: 'c1', model: 'model-b', text: 'Wait and see whether it passes in her stool.' },
    ],
  }),
  draftItem(2),
];
items[1].criteria[0] = { ...items[1].criteria[0], text: `Sends the child to emergency care at once ${XSS}` };

const available = fs.existsSync(CHROMIUM);
if (!available) console.log(`review_page.test.ts: skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set PROMEDICAL_CHROMIUM)`);

let browser: Browser;
const work = workFolder(items, 'review-page');
test.before(async () => {
  if (!available) return;
  const puppeteer = (await import('puppeteer-core')).default;
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});
test.after(async () => {
  await browser?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

// Page-side code is given as strings: the project's type-check has no DOM library.
const settled = (page: Page) => page.waitForFunction('document.body.dataset.pending === "0"', { timeout: 10_000 });
const xss = (page: Page) => page.evaluate('window.__xss');
const itemShown = (page: Page, id: string) => page.waitForFunction(`document.getElementById('item-id').textContent.startsWith(${JSON.stringify(id)})`);
async function press(page: Page, ...keys: string[]) {
  for (const k of keys) {
    await page.keyboard.press(k as never);
    await settled(page);
  }
}
/** What the page shows of every criterion: decision, grades per candidate, the text shown. */
const shown = (page: Page) =>
  page.$$eval('.criterion', (rows) =>
    rows.map((r) => ({
      id: r.getAttribute('data-id'),
      action: r.querySelector('button[aria-pressed="true"]')?.getAttribute('data-action') ?? null,
      grades: Object.fromEntries([...r.querySelectorAll('button.grade')].map((b) => [b.getAttribute('data-response'), b.getAttribute('data-met')])),
      text: r.querySelector('.ctext')!.textContent,
    })),
  );
/** A screenshot from the top of the page (the whole page, or what an overlay covers). */
const shot = async (page: Page, name: string, fullPage = true) => {
  if (!SHOTS) return;
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: path.join(SHOTS, name) as `${string}.png`, fullPage });
};

const EDITED = 'Names a heart attack (acute coronary syndrome) as the cause to rule out first';

(available ? test : test.skip)('review a round from the keyboard; reload; kill the server mid-round; restart: nothing lost', async () => {
  let server = await reviewCli(work, 0, ['--round-size', '2']);
  const port = new URL(server.url).port;
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    await page.goto(server.url);
    // The reviewer id is asked once; a bad one is refused with a message.
    await page.waitForSelector('#reviewer-dialog:not([hidden])');
    await page.type('#reviewer-input', 'dr a');
    await page.keyboard.press('Enter');
    assert.match(await page.$eval('#reviewer-error', (e) => e.textContent!), /letters, digits/);
    await page.evaluate('document.getElementById("reviewer-input").value = ""');
    await page.type('#reviewer-input', 'dr-a');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.criterion');
    await settled(page);
    assert.equal(await page.$$eval('#round option', (o) => o.map((x) => x.textContent)), ['Round 0 (items 0\u20131)', 'Round 1 (items 2\u20132)']);
    assert.match(await page.$eval('#progress', (e) => e.textContent!), /^Item 1 of 2 · 0 finished by you$/);
    assert.equal(await page.$$eval('#candidates .candidate header', (h) => h.map((x) => x.textContent)), ['1 · c0 · model-a', '2 · c1 · model-b']);
    // Grouped by tier: safety, proficiency, excellence.
    assert.equal((await shown(page)).map((r) => r.id), ['s1', 'p1', 'p2', 'p3', 'x1']);

    // "saved" only once the server answered: hold the reject's POST and look before letting it go.
    await page.setRequestInterception(true);
    const held: { req?: HTTPRequest } = {};
    const onRequest = (req: HTTPRequest) => {
      if (req.method() === 'POST' && /"action":"reject"/.test(req.postData() ?? '')) held.req = req;
      else void req.continue();
    };
    page.on('request', onRequest);

    await press(page, 'a', '1', '2', '2'); // s1: accept; c0 met, c1 met then not met
    await press(page, 'j', 'e');
    await page.waitForSelector('.editor textarea');
    assert.ok(await page.evaluate("document.activeElement === document.querySelector('.editor textarea')"), 'the editor has the focus');
    await page.keyboard.down('Control');
    await page.keyboard.press('a');
    await page.keyboard.up('Control');
    await page.keyboard.type(EDITED);
    await shot(page, 'rubrics-review-edit.png');
    await press(page, 'Enter', '1', '2', '2'); // p1: edited; c0 met, c1 not met
    await page.keyboard.press('j');
    await page.keyboard.press('r'); // p2: reject (held)
    await page.waitForFunction(`document.querySelector('.criterion[data-id="p2"] .csave').textContent === 'saving reject\u2026'`);
    await new Promise((r) => setTimeout(r, 200));
    assert.is(await page.$eval('.criterion[data-id="p2"] .csave', (e) => e.textContent), 'saving reject\u2026', 'not saved before the answer');
    assert.is(await page.$eval('.criterion[data-id="p2"] button[data-action="reject"]', (e) => e.getAttribute('aria-pressed')), 'false');
    assert.ok(held.req, 'the reject was sent');
    await held.req!.continue();
    await settled(page);
    assert.is(await page.$eval('.criterion[data-id="p2"] .csave', (e) => e.textContent), 'saved reject');
    page.off('request', onRequest);
    await page.setRequestInterception(false);
    await press(page, 'j', 'a', '1', '2'); // p3: accept; both met
    await press(page, 'ArrowDown', 'a', '1', '2', '2'); // x1: accept; c0 met, c1 not met
    await press(page, 'ArrowUp', 'ArrowDown'); // back and forth: x1 selected again

    const expected = [
      { id: 's1', action: 'accept', grades: { c0: 'true', c1: 'false' }, text: items[0].criteria[0].text },
      { id: 'p1', action: 'edit', grades: { c0: 'true', c1: 'false' }, text: EDITED },
      { id: 'p2', action: 'reject', grades: { c0: null, c1: null }, text: items[0].criteria[2].text },
      { id: 'p3', action: 'accept', grades: { c0: 'true', c1: 'true' }, text: items[0].criteria[3].text },
      { id: 'x1', action: 'accept', grades: { c0: 'true', c1: 'false' }, text: items[0].criteria[4].text },
    ];
    assert.equal(await shown(page), expected);
    assert.is(await page.$eval('.criterion.selected', (e) => e.getAttribute('data-id')), 'x1');
    await shot(page, 'rubrics-review.png');

    await page.keyboard.press('?');
    await page.waitForSelector('#help:not([hidden])');
    assert.match(await page.$eval('#help', (e) => e.textContent!), /toggle candidate N's grade/);
    await shot(page, 'rubrics-review-help.png', false);
    await page.keyboard.press('Escape');
    await page.waitForSelector('#help[hidden]', { hidden: true });

    // The journal (the server's truth) has what the page shows.
    const folded = foldJournal(readJournal(journalFile(work))).get('dr-a')!.get('q0')!;
    assert.equal(Object.fromEntries([...folded.decisions].map(([c, d]) => [c, d.action])), { s1: 'accept', p1: 'edit', p2: 'reject', p3: 'accept', x1: 'accept' });
    assert.is(folded.decisions.get('p1')!.edit!.text, EDITED);
    assert.equal(Object.fromEntries([...folded.grades.get('c1')!].map(([c, g]) => [c, g.met])), { s1: false, p1: false, p3: true, x1: false });

    await page.reload();
    await page.waitForSelector('.criterion');
    await settled(page);
    assert.is(await page.$eval('#reviewer-dialog', (e) => e.hasAttribute('hidden')), true, 'the reviewer id is remembered');
    assert.equal(await shown(page), expected, 'a reload shows every decision');
    assert.match(await page.$eval('.criterion[data-id="p1"] .original', (e) => e.textContent!), /^drafted: Names a heart attack as the likely cause/);

    // Finish the item: the next unfinished one opens (the one with markup in its text).
    await press(page, 'd');
    await itemShown(page, 'q1');
    assert.match(await page.$eval('#progress', (e) => e.textContent!), /^Item 2 of 2 · 1 finished by you$/);
    const done = foldJournal(readJournal(journalFile(work))).get('dr-a')!.get('q0')!.done;
    assert.is(done.length, 1);
    assert.ok(done[0].seconds > 0 && done[0].seconds < 120, String(done[0].seconds));

    // Text from the data is shown as text: no element made of it, nothing run.
    assert.is(await xss(page), undefined);
    assert.is(await page.$$eval('main img, main script, main b', (x) => x.length), 0);
    assert.ok((await page.$eval('#messages', (e) => e.textContent!)).includes(XSS));
    assert.ok((await page.$eval('.criterion[data-id="s1"] .ctext', (e) => e.textContent!)).endsWith(XSS));
    await page.hover('#candidates .candidate');
    assert.is(await xss(page), undefined);

    // Two decisions on q1, then the server is killed mid-round.
    await press(page, 'a', 'j', 'r');
    server.child.kill('SIGKILL');
    await exited(server.child);
    const before = foldJournal(readJournal(journalFile(work))).get('dr-a')!.get('q1')!;
    assert.equal(Object.fromEntries([...before.decisions].map(([c, d]) => [c, d.action])), { s1: 'accept', p1: 'reject' }, 'acknowledged before the kill: in the journal');

    server = await reviewCli(work, Number(port), ['--round-size', '2']);
    await page.reload();
    await itemShown(page, 'q1');
    await settled(page);
    const after = await shown(page);
    assert.equal(after.filter((r) => r.action).map((r) => [r.id, r.action]), [['s1', 'accept'], ['p1', 'reject']]);
    assert.equal(errors, [], 'no script errors');
  } finally {
    await page.close();
    server.child.kill('SIGKILL');
    await exited(server.child);
  }
});

test.run();
