// Preloaded (node --import) into a server process under test: on SIGUSR2 it plants the kind of bug
// the last-resort handlers of src/main.ts exist for. PLANT=rejection (the default) leaves a rejected
// promise that nobody observes; PLANT=exception throws out of a timer.
process.on('SIGUSR2', () => {
  if (process.env.PLANT === 'exception') {
    setTimeout(() => {
      throw new Error('planted uncaught exception');
    });
  } else {
    void Promise.reject(new Error('planted unhandled rejection'));
  }
});
