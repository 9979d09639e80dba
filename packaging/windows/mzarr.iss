; Inno Setup script for Mzarr on Windows (Inno Setup 6.3 or newer: ArchitecturesAllowed=x64compatible).
;
; Build the bundle first, then compile this script:
;     python packaging\build.py
;     iscc packaging\windows\mzarr.iss            (-> packaging\dist\mzarr-<version>-windows-x86_64-setup.exe)
; Override the defaults with  iscc /DMyAppVersion=0.2.0 /DSourceDir=C:\path\to\dist\mzarr ...
;
; The installer needs no administrator rights (it installs for the current
; user unless the user picks "all users"), shows the licences (Mzarr's and
; those of what the bundle ships: licenses\THIRD_PARTY_LICENSES.txt, made by
; packaging/build.py), puts "Mzarr Viewer" in the Start menu, associates
; .mzarr files with mzarr-viewer.exe (with the Mzarr document icon) and can
; add the "mzarr" command line tool to PATH: the user's PATH (HKCU) for a
; per-user install, the system PATH (HKLM) for an all-users install.

; The architecture identifier x64compatible arrived in Inno Setup 6.3; stop
; older compilers here with a message saying so.
#if VER < EncodeVer(6, 3, 0)
  #error Inno Setup 6.3 or newer is needed (ArchitecturesAllowed=x64compatible): https://jrsoftware.org/isdl.php
#endif

#ifndef MyAppVersion
  #define MyAppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\dist\mzarr"
#endif
#define MyAppName "Mzarr"
#define MyAppExe "mzarr-viewer.exe"
#define ProgId "Mzarr.Image"
#define UserEnvKey "Environment"
#define SystemEnvKey "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"

[Setup]
AppId={{6C2D7A3E-4B1F-4E8A-9D57-2F3B8C1A9E40}
AppName={#MyAppName}
AppVersion={#MyAppVersion}
AppVerName={#MyAppName} {#MyAppVersion}
AppPublisher=The Mzarr developers
DefaultDirName={autopf}\{#MyAppName}
DefaultGroupName={#MyAppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ChangesAssociations=yes
ChangesEnvironment=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Windows 10 1809 or newer: what Qt 6 supports
MinVersion=10.0.17763
LicenseFile={#SourceDir}\licenses\THIRD_PARTY_LICENSES.txt
OutputDir=..\dist
OutputBaseFilename=mzarr-{#MyAppVersion}-windows-x86_64-setup
SetupIconFile=..\..\resources\mzarr.ico
UninstallDisplayIcon={app}\{#MyAppExe}
UninstallDisplayName={#MyAppName} {#MyAppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "association"; Description: "Open .mzarr files with Mzarr (double-click)"; GroupDescription: "File types:"
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the ""mzarr"" command line tool to PATH"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\..\resources\mzarr-file.ico"; DestDir: "{app}"; Flags: ignoreversion

[Icons]
Name: "{autoprograms}\Mzarr Viewer"; Filename: "{app}\{#MyAppExe}"; Comment: "View Mzarr multi-resolution images"
Name: "{autodesktop}\Mzarr Viewer"; Filename: "{app}\{#MyAppExe}"; Tasks: desktopicon

[Registry]
; HKA = HKCU for a per-user install, HKLM for "all users".
; The file type: .mzarr -> ProgID Mzarr.Image -> "mzarr-viewer.exe" "%1"
Root: HKA; Subkey: "Software\Classes\.mzarr"; ValueType: string; ValueName: ""; ValueData: "{#ProgId}"; Flags: uninsdeletevalue; Tasks: association
Root: HKA; Subkey: "Software\Classes\.mzarr"; ValueType: string; ValueName: "Content Type"; ValueData: "application/x-mzarr"; Flags: uninsdeletevalue; Tasks: association
Root: HKA; Subkey: "Software\Classes\.mzarr\OpenWithProgids"; ValueType: string; ValueName: "{#ProgId}"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "Mzarr multi-resolution image"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\mzarr-file.ico,0"
Root: HKA; Subkey: "Software\Classes\{#ProgId}\shell\open"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "Mzarr Viewer"
Root: HKA; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#MyAppExe}"" ""%1"""
; "Open with" list
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExe}"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "Mzarr Viewer"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExe}\SupportedTypes"; ValueType: string; ValueName: ".mzarr"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#MyAppExe}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#MyAppExe}"" ""%1"""
; the command line tool on PATH: the user's for a per-user install, the system's for "all users"
; (never uninsdeletevalue: that would delete the whole PATH; CurUninstallStepChanged removes our entry)
Root: HKCU; Subkey: "{#UserEnvKey}"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(False, ExpandConstant('{app}'))
Root: HKLM; Subkey: "{#SystemEnvKey}"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(True, ExpandConstant('{app}'))

[Run]
Filename: "{app}\{#MyAppExe}"; Description: "{cm:LaunchProgram,Mzarr Viewer}"; Flags: nowait postinstall skipifsilent

[Code]
{ PATH lives in HKCU\Environment for a per-user install and in HKLM\...\Session Manager\Environment for an
  all-users (administrative) install. }
function PathRoot(): Integer;
begin
  if IsAdminInstallMode then
    Result := HKEY_LOCAL_MACHINE
  else
    Result := HKEY_CURRENT_USER;
end;

function PathKey(): string;
begin
  if IsAdminInstallMode then
    Result := '{#SystemEnvKey}'
  else
    Result := '{#UserEnvKey}';
end;

{ True when this install's PATH (AllUsers: the system's) lacks Dir; False for the other install mode's entry. }
function NeedsAddPath(AllUsers: Boolean; Dir: string): Boolean;
var
  Path: string;
begin
  if AllUsers <> IsAdminInstallMode then
  begin
    Result := False;
    exit;
  end;
  if not RegQueryStringValue(PathRoot(), PathKey(), 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

{ Remove the entry Dir (any case, with or without a trailing backslash) from the PATH of this install's mode. }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Path, Padded, Entry: string;
  P: Integer;
  Changed: Boolean;
begin
  if CurUninstallStep <> usPostUninstall then
    exit;
  if not RegQueryStringValue(PathRoot(), PathKey(), 'Path', Path) then
    exit;
  Padded := ';' + Path + ';';
  Changed := False;
  Entry := ';' + ExpandConstant('{app}') + ';';
  P := Pos(Uppercase(Entry), Uppercase(Padded));
  if P = 0 then
  begin
    Entry := ';' + ExpandConstant('{app}') + '\;';
    P := Pos(Uppercase(Entry), Uppercase(Padded));
  end;
  while P > 0 do
  begin
    Delete(Padded, P, Length(Entry) - 1);
    Changed := True;
    P := Pos(Uppercase(Entry), Uppercase(Padded));
  end;
  if Changed then
  begin
    Path := Copy(Padded, 2, Length(Padded) - 2);
    RegWriteExpandStringValue(PathRoot(), PathKey(), 'Path', Path);
  end;
end;
