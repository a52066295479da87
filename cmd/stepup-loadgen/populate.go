package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// populateCmd writes tracked conversations pop-FROM..pop-(TO-1) of brand
// acme through the real store (redisstore.Observe: the same scripts, keys
// and TTLs as the bridge), then reports INFO memory and MEMORY USAGE.
func populateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("populate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("redis", "127.0.0.1:6379", "Redis address (loopback)")
	db := fs.Int("redis-db", 9, "Redis database (the bridge's, in `run`)")
	from := fs.Int("from", 0, "first conversation number")
	to := fs.Int("to", 1000, "one past the last conversation number (at most 2,000,000)")
	events := fs.Int("events", 5, "events per conversation: conversation.started and then consumer messages (each is remembered for dedupe)")
	conc := fs.Int("concurrency", 64, "store calls in flight")
	sample := fs.Int("sample", 500, "conversations sampled for MEMORY USAGE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly("--redis", *addr); err != nil {
		return err
	}
	if *db == 0 {
		return errors.New("--redis-db 0 is the test suites' database: use another")
	}
	if *from < 0 || *to <= *from || *to > 2_000_000 || *events < 1 || *events > 100 {
		return errors.New("need 0 <= --from < --to <= 2000000 and 1 <= --events <= 100")
	}
	client, err := redisstore.NewClient(config.Redis{Addrs: []string{*addr}, DB: *db, PoolSize: *conc})
	if err != nil {
		return err
	}
	defer client.Close()
	rc := redis.NewClient(&redis.Options{Addr: *addr, DB: *db})
	defer rc.Close()
	store, err := redisstore.New(client, redisstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	before, err := usedMemory(ctx, rc)
	if err != nil {
		return err
	}
	keysBefore, _ := rc.DBSize(ctx).Result()

	start := time.Now()
	var next atomic.Int64
	next.Store(int64(*from))
	var done atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= *to {
					return
				}
				cid := "pop-" + strconv.Itoa(n)
				now := time.Now()
				obs := bridge.Observation{Key: bridge.Key{Brand: "acme", Conversation: cid}, Platform: "standard", Consumer: consumerOf(cid), Channel: channels[n%len(channels)], At: now}
				for e := range *events {
					if err := store.Observe(ctx, cid+"-e"+strconv.Itoa(e), obs); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
				}
				if d := done.Add(1); d%100000 == 0 {
					fmt.Fprintf(stderr, "%s  populate: %d conversations (%.0f/s)\n", time.Now().UTC().Format("15:04:05"), d, float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	el := time.Since(start)
	after, err := usedMemory(ctx, rc)
	if err != nil {
		return err
	}
	keysAfter, _ := rc.DBSize(ctx).Result()
	n := *to - *from

	// MEMORY USAGE of a sample: the session string and the dedupe set.
	var sess, dedupe, got int64
	step := max(n / *sample, 1)
	for i := *from; i < *to && got < int64(*sample); i += step {
		key := bridge.Key{Brand: "acme", Conversation: "pop-" + strconv.Itoa(i)}
		tag := fmt.Sprintf("stepup:{p%d}:", key.Partition())
		c := strconv.Itoa(len(key.Brand)) + ":" + key.Brand + ":" + key.Conversation
		a, err1 := rc.MemoryUsage(ctx, tag+"s:"+c).Result()
		b, err2 := rc.MemoryUsage(ctx, tag+"e:"+c).Result()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("MEMORY USAGE of %s: %v %v (is the key layout of keys.go unchanged?)", c, err1, err2)
		}
		sess += a
		dedupe += b
		got++
	}
	frag, _ := infoField(ctx, rc, "memory", "mem_fragmentation_ratio")
	fmt.Fprintf(stdout, "populated conversations %d..%d (%d, %d events each) in %s (%.0f conversations/s, %.0f store calls/s)\n",
		*from, *to-1, n, *events, el.Round(time.Millisecond), float64(n)/el.Seconds(), float64(n**events)/el.Seconds())
	fmt.Fprintf(stdout, "db %d keys: %d -> %d\n", *db, keysBefore, keysAfter)
	fmt.Fprintf(stdout, "INFO memory used_memory: %d -> %d bytes (+%d, %.0f bytes per conversation added); mem_fragmentation_ratio %s\n",
		before, after, after-before, float64(after-before)/float64(n), frag)
	if got > 0 {
		fmt.Fprintf(stdout, "MEMORY USAGE (sample of %d): session %.0f + dedupe set %.0f = %.0f bytes per conversation\n",
			got, float64(sess)/float64(got), float64(dedupe)/float64(got), float64(sess+dedupe)/float64(got))
	}
	return nil
}

// cleanupCmd deletes the bridge's keys from the database.
func cleanupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("redis", "127.0.0.1:6379", "Redis address (loopback)")
	db := fs.Int("redis-db", 9, "Redis database")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == 0 {
		return errors.New("refusing to clean database 0 (the test suites' database)")
	}
	if err := loopbackOnly("--redis", *addr); err != nil {
		return err
	}
	rc := redis.NewClient(&redis.Options{Addr: *addr, DB: *db})
	defer rc.Close()
	before, _ := usedMemory(ctx, rc)
	n, err := deletePrefix(ctx, rc, "stepup:*")
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // UNLINK frees in the background
	after, _ := usedMemory(ctx, rc)
	left, _ := rc.DBSize(ctx).Result()
	fmt.Fprintf(stdout, "deleted %d keys from db %d; used_memory %d -> %d; keys left in db %d: %d\n", n, *db, before, after, *db, left)
	return nil
}
