/**
 * A task: called as `run(a, b)`. Taking its arguments instead of closing over them lets a
 * caller submit one method for every item, without a closure per item.
 */
type Task<A = never, B = never> = (a: A, b: B) => Promise<void> | undefined;
type AnyTask = (a: unknown, b: unknown) => Promise<void> | undefined;
/** See `KeyedExecutor.continueWith`. */
export type Continuation<A = never, B = never> = (
  a: A,
  b: B,
  failed: boolean,
  error: unknown,
) => Promise<void> | undefined;
type AnyContinuation = (a: unknown, b: unknown, failed: boolean, error: unknown) => Promise<void> | undefined;

interface Lane {
  readonly name: string;
  /** Queued tasks as flat triples: task, a, b. */
  queue: unknown[];
  head: number;
  running: boolean;
}

/**
 * Runs tasks with at most `concurrency` at once. Tasks submitted with the same lane run one at
 * a time in submission order; tasks without a lane, and tasks of different lanes, run in
 * parallel. This is how `order: 'key' | 'partition'` keeps order while using concurrency.
 *
 * Tasks must not throw; a rejection is a bug in the caller and is re-thrown asynchronously.
 */
export class KeyedExecutor {
  private running = 0;
  private queued = 0;
  /** Tasks waiting for a slot, as flat triples (task, a, b); a lane waits as (drain, lane). */
  private ready: unknown[] = [];
  private readyHead = 0;
  private readonly lanes = new Map<string, Lane>();
  private idleWaiters: (() => void)[] = [];
  private spaceWaiters: { below: number; resolve: () => void }[] = [];
  private paused = false;
  /**
   * Tasks coming back from `releaseWhile` (their resume functions): served before new tasks,
   * and even while paused (they started before the pause, and a revoke or close waits for them).
   */
  private readonly resumed: (() => void)[] = [];
  /** Set by `continueWith` while a task returns. */
  private continuation: AnyContinuation | undefined;

  constructor(private concurrency: number) {}

  /** Slots: tasks that may run at once. */
  get limit(): number {
    return this.concurrency;
  }

  /**
   * Changes the number of slots while running. Raising it starts queued tasks at once; lowering
   * it lets running tasks finish and starts no new one until fewer than `concurrency` run.
   */
  setConcurrency(concurrency: number): void {
    this.concurrency = concurrency;
    this.pump();
  }

  /** Starts no queued task until `resume`; running tasks go on. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Tasks queued or running. */
  get size(): number {
    return this.running + this.queued;
  }

  /** Queues `task(a, b)`; see the class. */
  submit(lane: string | undefined, task: () => Promise<void> | undefined): void;
  submit<A, B>(lane: string | undefined, task: Task<A, B>, a: A, b: B): void;
  submit(lane: string | undefined, task: AnyTask, a?: unknown, b?: unknown): void {
    this.queued++;
    if (lane === undefined) {
      this.ready.push(task, a, b);
    } else {
      let l = this.lanes.get(lane);
      if (l === undefined) {
        l = { name: lane, queue: [], head: 0, running: false };
        this.lanes.set(lane, l);
      }
      l.queue.push(task, a, b);
      if (!l.running) {
        l.running = true;
        this.ready.push(this.drain, l, undefined);
      }
    }
    this.pump();
  }

  /**
   * Called by a running task as the last thing before it returns a promise: the task ends when
   * that promise settled and then `after(a, b, failed, error)` (with the task's arguments) did,
   * as if the task had awaited its promise and called `after` itself, without a closure, an
   * async frame and a second promise per task.
   */
  continueWith<A, B>(after: Continuation<A, B>): void {
    this.continuation = after as AnyContinuation;
  }

  /**
   * Called from inside a running task: gives its concurrency slot to other tasks while `wait`
   * is pending, then takes the next free slot, ahead of tasks not started yet (also while
   * paused). The task keeps its
   * lane, so a key retrying with back-off holds up only that key. Parked tasks are not counted
   * in `size`.
   */
  async releaseWhile<T>(wait: Promise<T>): Promise<T> {
    this.running--;
    this.pump();
    this.notify();
    try {
      return await wait;
    } finally {
      await new Promise<void>((resume) => {
        this.queued++;
        this.resumed.push(resume);
        this.pump();
      });
    }
  }

  /** Resolves when nothing is queued or running. */
  onIdle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves when fewer than `limit` tasks are queued or running (for bounded prefetch). */
  onSizeBelow(limit: number): Promise<void> {
    if (this.size < limit) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push({ below: limit, resolve }));
  }

  /**
   * Runs a lane's queued tasks one after another in the slot it was given. Between two tasks
   * it keeps the slot only when nothing else waits for one (and the executor is neither paused
   * nor over its limit), so a busy lane is as fair to others as queueing each task anew, and
   * costs no promise chain per task when it need not be.
   */
  private readonly drain = async (laneArg: unknown): Promise<void> => {
    const lane = laneArg as Lane;
    for (;;) {
      const queue = lane.queue;
      const task = queue[lane.head] as AnyTask;
      const a = queue[lane.head + 1];
      const b = queue[lane.head + 2];
      queue[lane.head] = queue[lane.head + 1] = queue[lane.head + 2] = undefined;
      lane.head += 3;
      if (lane.head === queue.length) {
        queue.length = 0;
        lane.head = 0;
      } else if (lane.head > 3072 && lane.head * 2 > queue.length) {
        lane.queue = queue.slice(lane.head); // not splice: it would copy out the larger, dead part
        lane.head = 0;
      }
      try {
        this.continuation = undefined;
        const result = task(a, b);
        const after = this.continuation as AnyContinuation | undefined;
        this.continuation = undefined;
        if (result !== undefined) {
          if (after === undefined) await result;
          else {
            let failed = false;
            let error: unknown;
            try {
              await result;
            } catch (thrown) {
              failed = true;
              error = thrown;
            }
            const more = after(a, b, failed, error);
            if (more !== undefined) await more;
          }
        }
      } catch (error) {
        this.continuation = undefined;
        queueMicrotask(() => {
          throw error;
        });
      }
      if (lane.head === lane.queue.length) {
        lane.running = false;
        this.lanes.delete(lane.name);
        return;
      }
      if (
        this.paused ||
        this.running > this.concurrency ||
        this.readyHead < this.ready.length ||
        this.resumed.length > 0
      ) {
        this.ready.push(this.drain, lane, undefined); // its next task waits its turn, as a new one would
        return;
      }
      this.queued--; // the next task starts in this slot
      this.notify();
    }
  };

  private pump(): void {
    let finished = false;
    while (this.running < this.concurrency) {
      const resume = this.resumed.shift();
      if (resume !== undefined) {
        this.running++;
        this.queued--;
        resume(); // the parked task runs on in this slot and ends it
        continue;
      }
      if (this.paused || this.readyHead >= this.ready.length) break;
      const ready = this.ready; // read anew each time: a task may submit, and a nested pump compact
      const head = this.readyHead;
      const task = ready[head] as AnyTask;
      const a = ready[head + 1];
      const b = ready[head + 2];
      ready[head] = ready[head + 1] = ready[head + 2] = undefined;
      this.readyHead = head + 3;
      if (this.readyHead === ready.length) {
        ready.length = 0;
        this.readyHead = 0;
      } else if (this.readyHead > 3072 && this.readyHead * 2 > ready.length) {
        this.ready = ready.slice(this.readyHead); // not splice: it would copy out the dead part
        this.readyHead = 0;
      }
      this.running++;
      this.queued--;
      let result: Promise<void> | undefined;
      try {
        this.continuation = undefined;
        result = task(a, b);
        const after = this.continuation as AnyContinuation | undefined;
        this.continuation = undefined;
        if (result !== undefined && after !== undefined) result = continued(result, after, a, b);
      } catch (error) {
        this.continuation = undefined;
        // A bug in the caller; its slot must not be lost with it.
        this.running--;
        finished = true;
        queueMicrotask(() => {
          throw error;
        });
        continue;
      }
      if (result === undefined) {
        this.running--; // finished synchronously: its slot is free again
        finished = true;
        continue;
      }
      result.then(this.done, this.failed);
    }
    if (finished) this.notify();
  }

  private readonly done = (): void => {
    this.running--;
    this.pump();
    this.notify();
  };

  private readonly failed = (error: unknown): void => {
    this.done();
    queueMicrotask(() => {
      throw error;
    });
  };

  private notify(): void {
    const size = this.size;
    if (this.spaceWaiters.length > 0) {
      const waiting = this.spaceWaiters;
      this.spaceWaiters = [];
      for (const w of waiting) {
        if (size < w.below) w.resolve();
        else this.spaceWaiters.push(w);
      }
    }
    if (size === 0 && this.idleWaiters.length > 0) {
      const waiting = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiting) resolve();
    }
  }
}

/** A task's promise followed by its continuation (tasks run without a lane). */
async function continued(
  result: Promise<void>,
  after: AnyContinuation,
  a: unknown,
  b: unknown,
): Promise<void> {
  let failed = false;
  let error: unknown;
  try {
    await result;
  } catch (thrown) {
    failed = true;
    error = thrown;
  }
  await after(a, b, failed, error);
}
