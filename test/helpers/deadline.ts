/**
 * `wait`, or what `onTimeout` gives (or throws) once `ms` have passed without it: the bound on a
 * wait for an event (an answer, a close, a log line), so that a broken test fails instead of
 * hanging. Not a sleep: when the event comes first, nothing waits for the timer.
 */
export function withDeadline<T>(wait: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (error) {
        reject(error as Error);
      }
    }, ms);
  });
  return Promise.race([wait, late]).finally(() => clearTimeout(timer));
}
