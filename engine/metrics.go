package engine

import "time"

// Recorder hears what an engine does, for metrics. Its methods must be
// safe for concurrent use and quick: the engine calls them inline.
type Recorder interface {
	// LockWaited is how long an Apply attempt waited for its tenant's
	// lock, whether it got it or not.
	LockWaited(d time.Duration)
	// Retried is an attempt that failed with a transient error and will
	// be tried again, by SQLSTATE ("" for a lost connection).
	Retried(sqlstate string)
	// Recovered is an unfinished intent the engine closed: completed, or
	// undone (see RecoveryCompleted and RecoveryUndone).
	Recovered(outcome string)
	// Unfinished is the number of unfinished intents of the engine's
	// database, as its last sweep found them.
	Unfinished(n int)
}

// The outcomes of Recorder.Recovered.
const (
	RecoveryCompleted = "completed"
	RecoveryUndone    = "undone"
)

// nopRecorder is the Recorder of Options that name none.
type nopRecorder struct{}

func (nopRecorder) LockWaited(time.Duration) {}
func (nopRecorder) Retried(string)           {}
func (nopRecorder) Recovered(string)         {}
func (nopRecorder) Unfinished(int)           {}
