package liveperson

import (
	"os"
	"testing"
)

// BenchmarkParse is the JSON decoding alone (no signature check) of a
// realistic messaging (ContentEvent text) and conversation (cqm) payload.
func BenchmarkParse(b *testing.B) {
	for _, name := range []string{
		"ms.MessagingEventNotification.ContentEvent.consumer-text",
		"cqm.ExConversationChangeNotification.consumer-created",
		"cqm.ExConversationChangeNotification.open-with-dialogs",
	} {
		b.Run(name, func(b *testing.B) {
			body, err := os.ReadFile("testdata/" + name + ".json")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				items, _, err := parse(body)
				if err != nil || len(items) != 1 {
					b.Fatal(len(items), err)
				}
			}
		})
	}
}
