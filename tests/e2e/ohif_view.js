// Opens a study in OHIF (headless Chromium via playwright-core), loads its SEG, takes a screenshot,
// and prints one JSON line with what the DOM shows (tests/e2e/test_ohif.py asserts on it).
//
//   node ohif_view.js <viewer url> <screenshot.png> '{"seg": "<SEG series description>"}'
//
// Steps as a radiologist does them: the viewer opens the study (CT in the viewport), the SEG series
// thumbnail is double-clicked, "Do you want to open this Segmentation?" is answered Yes, the
// Segmentation panel is opened; its rows are the SEG's segment labels.
const { chromium } = require('playwright-core');

const [url, screenshot, expectJson] = process.argv.slice(2);
const expect = JSON.parse(expectJson || '{}');
const FLAGS = ['--headless', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const texts = (page, sel) => page.$$eval(sel, els => els.map(e => e.innerText.trim()));

(async () => {
  const out = { url, steps: [] };
  const t0 = Date.now();
  const step = name => out.steps.push([name, Date.now() - t0]);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: FLAGS });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  out.console_errors = [];
  page.on('console', m => { if (m.type() === 'error') out.console_errors.push(m.text().slice(0, 300)); });
  try {
    await page.goto(url);
    await page.waitForSelector('[data-cy="viewport-pane"] canvas', { timeout: 120000 });
    step('viewport');
    const tour = page.getByText('Skip all');  // the first-visit guided tour covers the study browser
    if (await tour.count()) await tour.first().click();
    await page.waitForSelector('[data-cy="series-description-label"]', { timeout: 60000 });
    out.series = await texts(page, '[data-cy="series-description-label"]');
    out.modalities = await texts(page, '[data-cy="series-modality-label"]');
    out.overlay = await texts(page, '[data-cy="viewport-overlay-top-left"]');
    const seg = page.locator('[data-cy="study-browser-thumbnail-no-image"]', { hasText: expect.seg || 'SEG' });
    await seg.first().dblclick();
    await page.waitForSelector('[data-cy="yes-hydrate-btn"]', { timeout: 60000 });
    await page.click('[data-cy="yes-hydrate-btn"]');
    step('seg loaded');
    await page.click('[data-cy="panelSegmentation-btn"]');
    await page.waitForSelector('[data-cy="data-row-title"]', { timeout: 60000 });
    await page.waitForTimeout(2000);  // let the viewport draw the overlay before the screenshot
    out.segmentation = await texts(page, '[data-cy="segmentation-select-value"]');
    out.segments = await texts(page, '[data-cy="data-row-title"]');
    out.ok = true;
  } catch (e) {
    out.ok = false;
    out.error = String(e).slice(0, 1000);
  }
  try { await page.screenshot({ path: screenshot }); out.screenshot = screenshot; } catch (e) { out.screenshot_error = String(e); }
  out.body_text = (await page.evaluate(() => document.body.innerText).catch(() => '')).slice(0, 3000);
  step('done');
  await browser.close();
  console.log(JSON.stringify(out));
})();
