type Task = () => Promise<void>;

/** Returned by the internal resume task of `releaseWhile`: its slot belongs to the resumed task. */
const RESUMED = Promise.resolve();

interface Lane {
  queue: Task[];
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
  private readonly ready: Task[] = [];
  private readyHead = 0;
  private readonly lanes = new Map<string, Lane>();
  private idleWaiters: (() => void)[] = [];
  private spaceWaiters: { below: number; resolve: () => void }[] = [];
  private paused = false;
  /**
   * Tasks coming back from `releaseWhile`: served before new ones, and even while paused (they
   * started before the pause, and a revoke or close waits for them to end).
   */
  private resumed: Task[] = [];

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

  submit(lane: string | undefined, task: Task): void {
    this.queued++;
    if (lane === undefined) {
      this.ready.push(task);
    } else {
      let l = this.lanes.get(lane);
      if (l === undefined) {
        l = { queue: [], head: 0, running: false };
        this.lanes.set(lane, l);
      }
      if (l.running || l.head < l.queue.length) {
        l.queue.push(task);
      } else {
        l.running = true;
        this.ready.push(this.inLane(lane, l, task));
      }
    }
    this.pump();
  }

  /**
   * Called from inside a running task: gives its concurrency slot to other tasks while `wait`
   * is pending, then takes the next free slot, ahead of tasks not started yet (also while paused). The task keeps its
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
        this.resumed.push(() => {
          resume();
          return RESUMED;
        });
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

  private inLane(name: string, lane: Lane, task: Task): Task {
    return async () => {
      try {
        await task();
      } finally {
        if (lane.head < lane.queue.length) {
          const next = lane.queue[lane.head] as Task;
          lane.queue[lane.head++] = undefined as unknown as Task;
          if (lane.head > 1024 && lane.head * 2 > lane.queue.length) {
            lane.queue.splice(0, lane.head);
            lane.head = 0;
          }
          this.ready.push(this.inLane(name, lane, next));
        } else {
          lane.running = false;
          this.lanes.delete(name);
        }
      }
    };
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      let task: Task;
      if (this.resumed.length > 0) task = this.resumed.shift() as Task;
      else if (!this.paused && this.readyHead < this.ready.length) {
        task = this.ready[this.readyHead] as Task;
        this.ready[this.readyHead++] = undefined as unknown as Task;
        if (this.readyHead === this.ready.length) {
          this.ready.length = 0;
          this.readyHead = 0;
        }
      } else return;
      this.running++;
      this.queued--;
      const result = task();
      if (result === RESUMED) continue; // the parked task runs on in this slot and ends it
      result.then(this.done, (error: unknown) => {
        this.done();
        queueMicrotask(() => {
          throw error;
        });
      });
    }
  }

  private readonly done = (): void => {
    this.running--;
    this.pump();
    this.notify();
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
