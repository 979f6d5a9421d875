package admission

import (
	"context"
	"testing"
	"time"
)

// fill takes n slots of class c and fails if any is refused.
func fill(t *testing.T, l *Limiter, c Class, n int) []func() {
	t.Helper()
	var rs []func()
	for i := range n {
		r, ok := l.Admit(context.Background(), c)
		if !ok {
			t.Fatalf("slot %d of class %d refused", i, c)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestFullPoolRefusesStandardButNotCarKey(t *testing.T) {
	l := New(Limits{Concurrency: 2, Reserved: 1, Queue: 0, LongPolls: 1})
	fill(t, l, Standard, 2)
	if _, ok := l.Admit(context.Background(), Standard); ok {
		t.Fatal("a third standard request was admitted past a pool of 2 with no queue")
	}
	release, ok := l.Admit(context.Background(), CarKey)
	if !ok {
		t.Fatal("a car key was refused while its reserved slot was free")
	}
	if _, ok := l.Admit(context.Background(), CarKey); ok {
		t.Fatal("a second car key was admitted with the reserved slot and the shared pool taken")
	}
	release()
	if _, ok := l.Admit(context.Background(), CarKey); !ok {
		t.Fatal("the reserved slot was not given back")
	}
	if s, r, _, q := l.InFlight(); s != 2 || r != 1 || q != 0 {
		t.Fatalf("in flight = %d shared, %d reserved, %d queued; want 2, 1, 0", s, r, q)
	}
}

func TestStandardNeverTakesAReservedSlot(t *testing.T) {
	l := New(Limits{Concurrency: 1, Reserved: 5, Queue: 0})
	fill(t, l, Standard, 1)
	if _, ok := l.Admit(context.Background(), Standard); ok {
		t.Fatal("a standard request took a slot reserved for car keys")
	}
	fill(t, l, CarKey, 5) // all five reserved slots are still free
	if _, ok := l.Admit(context.Background(), CarKey); ok {
		t.Fatal("a sixth car key was admitted with the reserve and the shared pool taken")
	}
}

func TestCarKeyUsesTheSharedPoolWhenItsOwnIsFull(t *testing.T) {
	l := New(Limits{Concurrency: 2, Reserved: 1, Queue: 0})
	fill(t, l, CarKey, 3)
	if _, ok := l.Admit(context.Background(), Standard); ok {
		t.Fatal("the shared pool should be full of car keys")
	}
}

func TestQueuedRequestGetsTheNextSlot(t *testing.T) {
	l := New(Limits{Concurrency: 1, Reserved: 1, Queue: 1, Wait: time.Hour})
	rs := fill(t, l, Standard, 1)
	got := make(chan bool)
	go func() {
		_, ok := l.Admit(context.Background(), Standard)
		got <- ok
	}()
	for {
		if _, _, _, q := l.InFlight(); q == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, ok := l.Admit(context.Background(), Standard); ok {
		t.Fatal("a request was admitted past a full queue")
	}
	rs[0]()
	if !<-got {
		t.Fatal("the queued request was refused when a slot came free")
	}
}

func TestQueuedRequestIsRefusedWhenItsWaitRunsOutOrItsContextEnds(t *testing.T) {
	l := New(Limits{Concurrency: 1, Queue: 5, Wait: time.Millisecond})
	fill(t, l, Standard, 1)
	if _, ok := l.Admit(context.Background(), Standard); ok {
		t.Fatal("a queued request was admitted with no slot free")
	}
	l = New(Limits{Concurrency: 1, Queue: 5, Wait: time.Hour})
	fill(t, l, Standard, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := l.Admit(ctx, Standard); ok {
		t.Fatal("a request whose client left was admitted")
	}
	if _, _, _, q := l.InFlight(); q != 0 {
		t.Fatalf("queued = %d after both left, want 0", q)
	}
}

func TestLongPollsHaveTheirOwnPoolAndNeverQueue(t *testing.T) {
	l := New(Limits{Concurrency: 1, Queue: 10, Wait: time.Hour, LongPolls: 2})
	fill(t, l, Standard, 1)
	fill(t, l, LongPoll, 2)
	if _, ok := l.Admit(context.Background(), LongPoll); ok {
		t.Fatal("a third long-poll was admitted past a pool of 2")
	}
}
