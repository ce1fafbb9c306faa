// The live appeal-queue stream: StreamAppealQueue from the model's last
// sequence, reconnecting with backoff (0.5 s doubling to 10 s) and resuming
// where it stopped, so nothing is missed and repeats are ignored by the model.

import { stream } from './grpcweb.js';
import { app, SUPPORT_SVC } from './app.js';

export const MIN_BACKOFF = 500;
export const MAX_BACKOFF = 10000;

export class LiveStream {
  /**
   * opts: resumeFrom() -> after_seq; onEvent(event); onState("live"|"reconnecting", detail);
   * onOutOfRange() -> Promise (re-read state; resumeFrom() then gives the new point);
   * onFatal(error) for errors retrying cannot fix; onRefused(error) once per
   * run of refusals (RESOURCE_EXHAUSTED: too many streams), which is retried
   * but is the operator's business, not only "reconnecting"; the run ends
   * when the stream opens.
   */
  constructor(opts) {
    this.opts = opts;
    this.running = false;
    this.controller = null;
    this.backoff = MIN_BACKOFF;
    this.wake = null;
    this.refused = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
  }

  /** Reconnect now (e.g. after the state was re-read). */
  restart() {
    if (this.controller) this.controller.abort();
  }

  wait(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).finally(() => {
      this.wake = null;
    });
  }

  async loop() {
    while (this.running) {
      const controller = new AbortController();
      this.controller = controller;
      let opened = 0;
      let received = 0;
      let error = null;
      this.opts.onState('reconnecting', null);
      try {
        await stream(`${SUPPORT_SVC}StreamAppealQueue`, { after_seq: this.opts.resumeFrom() }, {
          token: app.session ? app.session.token : '',
          signal: controller.signal,
          onOpen: () => {
            opened = Date.now();
            this.refused = false;
            this.opts.onState('live', null);
          },
          onMessage: (ev) => {
            received += 1;
            try {
              this.opts.onEvent(ev);
            } catch (e) {
              // A view failing on one event must not drop the stream.
              this.opts.onViewError?.(e);
            }
          },
        });
      } catch (e) {
        error = e;
      }
      this.controller = null;
      if (!this.running) return;
      if (error && error.aborted) {
        // restart(): reconnect at once.
        this.backoff = MIN_BACKOFF;
        continue;
      }
      if (error && (error.codeName === 'UNAUTHENTICATED' || error.codeName === 'PERMISSION_DENIED')) {
        this.running = false;
        this.opts.onFatal(error);
        return;
      }
      if (error && error.codeName === 'OUT_OF_RANGE') {
        // Too old (or ahead of a restored server): re-read the queue, then
        // resume from its as_of_seq after the usual pause.
        try {
          await this.opts.onOutOfRange();
        } catch (e) {
          error = e;
        }
        if (!this.running) return;
      }
      if (error && error.codeName === 'RESOURCE_EXHAUSTED' && !this.refused) {
        this.refused = true;
        this.opts.onRefused?.(error);
      }
      if (received > 0 || (opened && Date.now() - opened > 5000)) this.backoff = MIN_BACKOFF;
      this.opts.onState('reconnecting', error);
      await this.wait(this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF);
    }
  }
}
