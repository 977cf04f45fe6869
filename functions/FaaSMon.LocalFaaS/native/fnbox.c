// fnbox: starts one function instance as a lightweight container, the part of a container runtime
// that .NET cannot do itself (unshare(CLONE_NEWNS) is refused to a multi-threaded process).
//
//   fnbox --cgroup DIR... --hostname NAME [--bind SRC:DST[:ro]]... [--tmpfs-size SIZE]
//         [--user UID:GID] --chdir DIR
//
// The command comes from the environment variable `fprocess`, split on spaces and run without a
// shell, as of-watchdog does; it is kept off our own argv so that `pgrep -f index.js` finds only
// the function process. Process tree, as in an OpenFaaS container:
//
//   fnbox (host PID namespace, own session)          watches stdin: EOF means the owner is gone
//     └─ init (PID 1 of a new PID/mount/UTS/IPC ns)  mounts, reaps orphans, forwards SIGTERM
//          └─ node index.js (PID 2, unprivileged)
//
// fnbox exits with the function's exit status (128+signal when killed). Killing fnbox's process
// group, or closing its stdin, takes the whole namespace down.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ITEMS 16
#define MAX_ARGS 64

static const char *cgroups[MAX_ITEMS];
static int cgroup_count;
static const char *binds[MAX_ITEMS];
static int bind_count;
static const char *hostname_arg;
static const char *chdir_arg;
static const char *tmpfs_size = "64m";
static uid_t run_uid;
static gid_t run_gid;
static int have_user;

static volatile sig_atomic_t term_requested;
static pid_t forward_to;

static void die(const char *what) {
    fprintf(stderr, "fnbox: %s: %s\n", what, strerror(errno));
    exit(125);
}

static void usage(const char *msg) {
    fprintf(stderr, "fnbox: %s\nusage: fnbox --cgroup DIR... --hostname NAME [--bind SRC:DST[:ro]]... "
                    "[--tmpfs-size SIZE] [--user UID:GID] --chdir DIR  (command in $fprocess)\n", msg);
    exit(125);
}

static void on_term(int sig) {
    (void)sig;
    term_requested = 1;
    if (forward_to > 0) kill(forward_to, SIGTERM);
}

static void join_cgroups(void) {
    char pid[32];
    snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    for (int i = 0; i < cgroup_count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cgroup.procs", cgroups[i]);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) die(path);
        if (write(fd, pid, strlen(pid)) < 0) die(path);
        close(fd);
    }
}

static void bind_mount(const char *spec) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", spec);
    char *dst = strchr(buf, ':');
    if (!dst) usage("--bind wants SRC:DST[:ro]");
    *dst++ = '\0';
    char *mode = strchr(dst, ':');
    if (mode) *mode++ = '\0';
    if (mount(buf, dst, NULL, MS_BIND | MS_REC, NULL) < 0) die(dst);
    if (mode && strcmp(mode, "ro") == 0 &&
        mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        die(dst);
}

static void exec_function(void) {
    const char *fprocess = getenv("fprocess");
    if (!fprocess || !*fprocess) {
        fprintf(stderr, "fnbox: fprocess is not set\n");
        _exit(125);
    }
    static char copy[4096];
    snprintf(copy, sizeof copy, "%s", fprocess);
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *tok = strtok(copy, " "); tok && argc < MAX_ARGS - 1; tok = strtok(NULL, " ")) argv[argc++] = tok;
    argv[argc] = NULL;

    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) { dup2(devnull, STDIN_FILENO); close(devnull); }
    if (have_user) {
        if (setgroups(0, NULL) < 0 || setgid(run_gid) < 0 || setuid(run_uid) < 0) die("drop privileges");
    }
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    execvp(argv[0], argv);
    fprintf(stderr, "fnbox: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

// PID 1 of the new namespace: set up the mounts, start the function, reap orphans (a shell an
// attacker leaves behind is re-parented here), and exit when the function exits.
static int run_init(void) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private");
    if (sethostname(hostname_arg, strlen(hostname_arg)) < 0) die("sethostname");
    for (int i = 0; i < bind_count; i++) bind_mount(binds[i]);
    char opts[128];
    snprintf(opts, sizeof opts, "mode=1777,size=%s", tmpfs_size);
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) die("mount /tmp");
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
    if (chdir(chdir_arg) < 0) die(chdir_arg);

    pid_t fn = fork();
    if (fn < 0) die("fork");
    if (fn == 0) exec_function();

    forward_to = fn;
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (;;) {
        int status;
        pid_t w = wait(&status);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("wait");
        }
        if (w == fn) {
            kill(-1, SIGKILL);  // whatever the function left behind dies with the container
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage("missing value");
        if (strcmp(a, "--cgroup") == 0 && cgroup_count < MAX_ITEMS) cgroups[cgroup_count++] = v;
        else if (strcmp(a, "--bind") == 0 && bind_count < MAX_ITEMS) binds[bind_count++] = v;
        else if (strcmp(a, "--hostname") == 0) hostname_arg = v;
        else if (strcmp(a, "--chdir") == 0) chdir_arg = v;
        else if (strcmp(a, "--tmpfs-size") == 0) tmpfs_size = v;
        else if (strcmp(a, "--user") == 0) {
            unsigned u, g;
            if (sscanf(v, "%u:%u", &u, &g) != 2) usage("--user wants UID:GID");
            run_uid = u; run_gid = g; have_user = 1;
        } else usage(a);
        i++;
    }
    if (!hostname_arg || !chdir_arg) usage("--hostname and --chdir are required");

    setsid();
    join_cgroups();
    if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) < 0) die("unshare");

    pid_t init = fork();
    if (init < 0) die("fork");
    if (init == 0) _exit(run_init());

    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    forward_to = init;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    // The owner holds our stdin open; when it dies (even by SIGKILL) the pipe closes.
    struct pollfd owner = {.fd = STDIN_FILENO, .events = POLLIN};
    struct stat in;
    int owner_watch = fstat(STDIN_FILENO, &in) == 0 && S_ISFIFO(in.st_mode);
    int term_sent_at = -1, ticks = 0;
    for (;;) {
        int status;
        pid_t w = waitpid(init, &status, WNOHANG);
        if (w == init) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
        if (term_requested && term_sent_at < 0) term_sent_at = ticks;
        if (term_sent_at >= 0 && ticks - term_sent_at > 20) kill(init, SIGKILL);  // 2 s grace
        if (owner_watch) {
            int r = poll(&owner, 1, 100);
            if (r > 0) {
                char b[256];
                ssize_t n = read(STDIN_FILENO, b, sizeof b);
                if (n <= 0) { kill(init, SIGKILL); owner_watch = 0; }
            } else if (r < 0 && errno != EINTR) {
                owner_watch = 0;
            }
        } else {
            usleep(100000);
        }
        ticks++;
    }
}
