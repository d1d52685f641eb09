package config

import (
	"math"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "65536", want: 65536},
		{in: "12B", want: 12},
		{in: "1K", want: 1024},
		{in: "1k", want: 1024},
		{in: "1KB", want: 1000},
		{in: "1kb", want: 1000},
		{in: "1KiB", want: 1024},
		{in: "1kib", want: 1024},
		{in: "8M", want: 8 << 20},
		{in: "8MB", want: 8_000_000},
		{in: "8MiB", want: 8 << 20},
		{in: "16 MiB", want: 16 << 20},
		{in: " 2GiB ", want: 2 << 30},
		{in: "2GB", want: 2_000_000_000},
		{in: "2g", want: 2 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "8388607TiB", want: 8388607 << 40},
		{in: "8388608TiB", wantErr: true}, // 2^63: one past MaxInt64
		{in: "99999999999999999999", wantErr: true},
		{in: "12 potatoes", wantErr: true},
		{in: "1.5GiB", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "", wantErr: true},
		{in: "-1MiB", wantErr: true},
		{in: "1 Mib s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSize(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "50ms", want: 50 * time.Millisecond},
		{in: "10s", want: 10 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "2h", want: 2 * time.Hour},
		{in: "0s", want: 0},
		{in: "-5s", want: -5 * time.Second},
		{in: "1d", want: 24 * time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1d1m1s", want: 24*time.Hour + time.Minute + time.Second},
		{in: " 10s ", want: 10 * time.Second},
		{in: "106751d", want: 106751 * 24 * time.Hour},
		{in: "106752d", wantErr: true}, // past MaxInt64 nanoseconds
		{in: "106751d23h59m59s", wantErr: true},
		{in: "10 parsecs", wantErr: true},
		{in: "10", wantErr: true},
		{in: "d", wantErr: true},
		{in: "1d-1h", wantErr: true},
		{in: "1dx", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if int64(106751*24*time.Hour) > math.MaxInt64 {
		t.Fatal("test table assumes 106751 days fit in a Duration")
	}
}
